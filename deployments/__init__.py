"""Cloud entry points (SageMaker training and batch transform, IAM policies). See deployments/README.md."""
