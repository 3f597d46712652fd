"""Pure ML code: feature selection, models, metrics, scoring and the MLflow registry. No Prefect here."""
