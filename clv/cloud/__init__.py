"""Cloud backends: storage (a directory or S3) and SageMaker jobs."""
