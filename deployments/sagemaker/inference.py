"""SageMaker Batch Transform entry point: the framework container's model_fn / input_fn / predict_fn /
output_fn for the CLV model.

Each request is one parquet shard of `customer_features` (BatchStrategy SingleRecord, no splitting);
the response is CSV with a header: customer_id, predicted_clv_12m, top_reasons (the three strongest
exact TreeSHAP contributions in words, computed in batches), reason_contributions (the same as JSON).
"""

from __future__ import annotations

import io
import os
import pickle

import pandas as pd

MODEL_FILE = "model.pkl"


def model_fn(model_dir: str):
    with open(os.path.join(model_dir, MODEL_FILE), "rb") as handle:
        return pickle.load(handle)


def input_fn(request_body: bytes, content_type: str) -> pd.DataFrame:
    if content_type not in ("application/x-parquet", "application/octet-stream"):
        raise ValueError(f"unsupported content type {content_type}: send parquet shards")
    return pd.read_parquet(io.BytesIO(request_body))


def predict_fn(features: pd.DataFrame, model) -> pd.DataFrame:
    from models_ml.reasons import reasons_in_batches

    reasons, contributions = reasons_in_batches(model, features)
    return pd.DataFrame({"customer_id": features["customer_id"].astype(str),
                         "predicted_clv_12m": model.predict(features),
                         "top_reasons": reasons, "reason_contributions": contributions})


def output_fn(prediction: pd.DataFrame, accept: str) -> tuple[str, str]:
    return prediction.to_csv(index=False), "text/csv"


def transform_file(input_path: str, output_path: str, model_dir: str) -> None:
    """What the container does for one shard; used to run the same code outside SageMaker."""
    model = model_fn(model_dir)
    with open(input_path, "rb") as handle:
        body, _ = output_fn(predict_fn(input_fn(handle.read(), "application/x-parquet"), model), "text/csv")
    with open(output_path, "w") as handle:
        handle.write(body)
