"""SageMaker training entry point (script mode): fit the champion CLV model on the `train` channel.

In the CLV image (`Dockerfile` here) SageMaker runs `train`, which calls `main()` with the job's
hyperparameters (/opt/ml/input/config/hyperparameters.json) and the training set (parquet files written
by the weekly flow) in the `train` channel, then uploads /opt/ml/model as model.tar.gz. The
weekly flow downloads it and registers the model in MLflow exactly like a locally trained one.
Runs locally too: `SM_CHANNEL_TRAIN=dir SM_MODEL_DIR=out python deployments/sagemaker/train.py`.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import hmac
import json
import os
import pickle

import pandas as pd

from models_ml.training import fit_serving_model, serving_rows
from models_ml.zoo import default_spec

RESULT_FILE = "training_result.pkl"
SIGNATURE_FILE = RESULT_FILE + ".hmac"  # HMAC-SHA256 of RESULT_FILE under the job's own signing key
SIGNING_KEY_ENV = "CLV_RESULT_SIGNING_KEY"  # set by the flow for each job (never in the S3 output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--horizon-days", type=int, default=365)
    parser.add_argument("--model-spec", default="", help="model configuration as JSON (models_ml/zoo.py)")
    parser.add_argument("--history-length-dependent", default="",
                        help="comma-separated feature columns the offset model leaves out (from the dbt manifest)")
    args, _ = parser.parse_known_args(argv if argv is not None else _hyperparameter_args())
    train_dir = os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")
    model_dir = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
    files = sorted(glob.glob(os.path.join(train_dir, "*.parquet")))
    if not files:
        raise SystemExit(f"no parquet files in the train channel {train_dir}")
    training_set = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    spec = json.loads(args.model_spec) if args.model_spec else default_spec()
    rows = serving_rows(training_set, args.horizon_days)
    dependent = tuple(c for c in args.history_length_dependent.split(",") if c)
    model = fit_serving_model(rows, spec, args.horizon_days, dependent)
    os.makedirs(model_dir, exist_ok=True)
    payload = pickle.dumps(model)
    with open(os.path.join(model_dir, RESULT_FILE), "wb") as handle:
        handle.write(payload)
    key = os.environ.get(SIGNING_KEY_ENV)
    if key:  # the flow unpickles only a result signed with the key it gave this job
        with open(os.path.join(model_dir, SIGNATURE_FILE), "w") as handle:
            handle.write(hmac.new(key.encode(), payload, hashlib.sha256).hexdigest())
    with open(os.path.join(model_dir, "metrics.json"), "w") as handle:
        json.dump({"rows_trained": len(rows), "cutoffs": sorted(rows["cutoff_date"].unique()),
                   "model_spec": spec}, handle, indent=2, default=str)
    print(f"trained {spec['type']} on {len(rows)} rows (the backtest runs where the flow runs)")


def _hyperparameter_args() -> list[str]:
    """SageMaker's hyperparameters file as command-line arguments ({"horizon_days": "365"} ->
    --horizon-days 365); the process's own arguments when there is no such file."""
    path = os.path.join(os.environ.get("SM_INPUT_DIR", "/opt/ml/input"), "config", "hyperparameters.json")
    if not os.path.exists(path):
        import sys

        return sys.argv[1:]
    with open(path) as handle:
        values = json.load(handle)
    return [item for key, value in values.items() for item in (f"--{key.replace('_', '-')}", str(value))]


if __name__ == "__main__":
    main()
