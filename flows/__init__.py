"""Prefect flows: thin orchestration over clv/ and models_ml/."""
