"""Training and batch scoring on SageMaker, selected with CLV_TRAINING_BACKEND=sagemaker and
CLV_SCORING_BACKEND=sagemaker (both default to local).

Training: the training set goes to S3 as parquet, a training job runs the CLV image
(`deployments/sagemaker/Dockerfile`, `train.py`), and its model.tar.gz comes back as the same
`TrainingResult` a local fit gives, so the flow registers it in MLflow the same way.
Scoring: the champion model is packed as model.tar.gz, registered as a SageMaker model, and a Batch
Transform job scores parquet shards of customer_features (`inference.py`); its CSV output is read
back and published to `clv_scores` like local predictions.

Requests are built by pure functions (`training_job_request`, `model_request`, `transform_job_request`)
so they can be checked offline; boto3 sends them. Settings come from the environment (see README).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import pickle
import secrets
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from clv.cloud import storage

log = logging.getLogger(__name__)

TRAINING_BACKEND_ENV = "CLV_TRAINING_BACKEND"
SCORING_BACKEND_ENV = "CLV_SCORING_BACKEND"
SHARD_ROWS = 100_000  # customers per Batch Transform request (a parquet shard of a few MB)


def training_backend() -> str:
    return _backend(TRAINING_BACKEND_ENV)


def scoring_backend() -> str:
    return _backend(SCORING_BACKEND_ENV)


def _backend(variable: str) -> str:
    value = os.environ.get(variable, "local").lower()
    if value not in ("local", "sagemaker"):
        raise ValueError(f"{variable} must be local or sagemaker (got {value!r})")
    return value


class SageMakerJobError(RuntimeError):
    """A SageMaker job failed or stopped; the message carries its name and FailureReason."""


@dataclass(frozen=True)
class SageMakerSettings:
    role_arn: str
    image_uri: str
    storage_url: str  # s3://bucket/prefix where inputs, models and outputs go
    region: str
    training_instance_type: str = "ml.m5.2xlarge"
    transform_instance_type: str = "ml.m5.xlarge"
    transform_instance_count: int = 1
    max_runtime_seconds: int = 3 * 3600
    poll_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> "SageMakerSettings":
        missing = [name for name in ("CLV_SAGEMAKER_ROLE_ARN", "CLV_SAGEMAKER_IMAGE_URI", storage.STORAGE_URL_ENV)
                   if not os.environ.get(name)]
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if missing or not region:
            raise ValueError("the SageMaker backend needs " + ", ".join(missing + ([] if region else ["AWS_REGION"]))
                             + " (execution role ARN, the CLV image in ECR, an s3:// storage URL and a region)")
        url = os.environ[storage.STORAGE_URL_ENV]
        if not storage.is_s3(url):
            raise ValueError(f"the SageMaker backend needs {storage.STORAGE_URL_ENV} to be an s3:// URL (got {url})")
        return cls(
            role_arn=os.environ["CLV_SAGEMAKER_ROLE_ARN"],
            image_uri=os.environ["CLV_SAGEMAKER_IMAGE_URI"],
            storage_url=url.rstrip("/"),
            region=region,
            training_instance_type=os.environ.get("CLV_SAGEMAKER_TRAINING_INSTANCE", cls.training_instance_type),
            transform_instance_type=os.environ.get("CLV_SAGEMAKER_TRANSFORM_INSTANCE", cls.transform_instance_type),
            transform_instance_count=int(os.environ.get("CLV_SAGEMAKER_TRANSFORM_INSTANCES",
                                                        cls.transform_instance_count)),
            poll_seconds=float(os.environ.get("CLV_SAGEMAKER_POLL_SECONDS", cls.poll_seconds)),
        )

    def uri(self, *parts: str) -> str:
        return "/".join([self.storage_url, *parts])


def job_name(kind: str, now: datetime | None = None) -> str:
    """Unique, valid SageMaker name (63 characters at most, letters, digits and hyphens)."""
    now = now or datetime.now(timezone.utc)
    return f"clv-{kind}-{now:%Y%m%d-%H%M%S-%f}"[:63]


RESULT_FILE, SIGNATURE_FILE = "training_result.pkl", "training_result.pkl.hmac"  # as train.py writes them
SIGNING_KEY_ENV = "CLV_RESULT_SIGNING_KEY"


def training_job_request(settings: SageMakerSettings, name: str, train_uri: str, horizon_days: int,
                         spec: dict | None = None, history_length_dependent=(), signing_key: str | None = None) -> dict:
    """CreateTrainingJob request: the CLV image, the training set as the `train` channel, the model
    written under models/ of the storage URL. The columns the offset model leaves out travel as a
    hyperparameter (the job has no dbt manifest); the key the job signs its result with, as its
    environment (the execution role may not describe jobs, so no other job can read it)."""
    return {
        **({"Environment": {SIGNING_KEY_ENV: signing_key}} if signing_key else {}),
        "TrainingJobName": name,
        "RoleArn": settings.role_arn,
        "AlgorithmSpecification": {"TrainingImage": settings.image_uri, "TrainingInputMode": "File"},
        "HyperParameters": {"horizon_days": str(horizon_days),
                            **({"model_spec": json.dumps(spec, sort_keys=True)} if spec else {}),
                            **({"history_length_dependent": ",".join(history_length_dependent)}
                               if history_length_dependent else {})},
        "InputDataConfig": [{
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": train_uri,
                                            "S3DataDistributionType": "FullyReplicated"}},
            "ContentType": "application/x-parquet",
        }],
        "OutputDataConfig": {"S3OutputPath": settings.uri("models")},
        "ResourceConfig": {"InstanceType": settings.training_instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "Tags": [{"Key": "app", "Value": "clv"}],
    }


def model_request(settings: SageMakerSettings, name: str, model_data_uri: str) -> dict:
    """CreateModel request: the CLV image serving the packed champion."""
    return {
        "ModelName": name,
        "ExecutionRoleArn": settings.role_arn,
        "PrimaryContainer": {"Image": settings.image_uri, "ModelDataUrl": model_data_uri, "Mode": "SingleModel"},
        "Tags": [{"Key": "app", "Value": "clv"}],
    }


def transform_job_request(settings: SageMakerSettings, name: str, model_name: str, input_uri: str,
                          output_uri: str) -> dict:
    """CreateTransformJob request: one request per parquet shard, CSV out, one output file per shard."""
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": 100,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "application/x-parquet",
            "SplitType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": "text/csv", "AssembleWith": "None"},
        "TransformResources": {"InstanceType": settings.transform_instance_type,
                               "InstanceCount": settings.transform_instance_count},
        "Tags": [{"Key": "app", "Value": "clv"}],
    }


def sagemaker_client(settings: SageMakerSettings):
    import boto3

    return boto3.client("sagemaker", region_name=settings.region)


def wait_for_job(client, kind: str, name: str, settings: SageMakerSettings) -> dict:
    """Poll a training or transform job until it ends, logging each status change; the final
    description, or SageMakerJobError with the job's FailureReason. A wait that ends any other way (past
    the job's maximum runtime plus a poll, the flow's time-out or cancellation, Ctrl-C) stops the job
    first: it would otherwise run, and bill, on its own."""
    describe = client.describe_training_job if kind == "training" else client.describe_transform_job
    stop = client.stop_training_job if kind == "training" else client.stop_transform_job
    key = "TrainingJobName" if kind == "training" else "TransformJobName"
    status_key = "TrainingJobStatus" if kind == "training" else "TransformJobStatus"
    started, last = time.monotonic(), None
    try:
        while True:
            description = describe(**{key: name})
            status = description[status_key]
            if status != last:
                log.info("SageMaker %s job %s: %s (%.0f s)", kind, name, status, time.monotonic() - started)
                last = status
            if status == "Completed":
                return description
            if status in ("Failed", "Stopped"):
                raise SageMakerJobError(f"SageMaker {kind} job {name} {status.lower()}: "
                                        f"{description.get('FailureReason', 'no reason given')}")
            if time.monotonic() - started > settings.max_runtime_seconds + settings.poll_seconds:
                raise TimeoutError(f"SageMaker {kind} job {name} still {status} after "
                                   f"{settings.max_runtime_seconds:,} s, its maximum runtime")
            time.sleep(settings.poll_seconds)
    except SageMakerJobError:
        raise
    except BaseException:
        log.warning("stopping SageMaker %s job %s: the wait for it ended early", kind, name)
        try:
            stop(**{key: name})
        except Exception as exc:  # noqa: BLE001 - the original failure is the one to report
            log.warning("SageMaker %s job %s could not be stopped (%s)", kind, name, exc)
        raise


def fit_on_sagemaker(rows: pd.DataFrame, spec: dict, horizon_days: int, history_length_dependent=()):
    """`models_ml.training.train_and_evaluate`'s fit step as a SageMaker training job: the served model fit
    on the snapshots labelled at the horizon (the backtest itself runs where the flow runs)."""
    return train_on_sagemaker(rows, horizon_days, spec=spec, history_length_dependent=history_length_dependent)


def train_on_sagemaker(training_set: pd.DataFrame, horizon_days: int, settings: SageMakerSettings | None = None,
                       spec: dict | None = None, history_length_dependent=()):
    """Fit a model in a SageMaker training job on the given snapshots; returns the fitted model."""
    settings = settings or SageMakerSettings.from_env()
    client, s3 = sagemaker_client(settings), storage.s3_client()
    name = job_name("train")
    train_uri = settings.uri("training", name) + "/"
    _put_parquet(s3, training_set, train_uri + "training_set.parquet")
    signing_key = secrets.token_hex(32)
    request = training_job_request(settings, name, train_uri, horizon_days, spec, history_length_dependent,
                                   signing_key)
    client.create_training_job(**request)
    description = wait_for_job(client, "training", name, settings)
    artifact = description.get("ModelArtifacts", {}).get("S3ModelArtifacts") or \
        f"{settings.uri('models')}/{name}/output/model.tar.gz"
    with tempfile.TemporaryDirectory() as tmp:
        archive = storage.download(artifact, Path(tmp), s3)
        payload = verified_result(archive, artifact, signing_key)
    log.info("SageMaker training job %s: model %s", name, artifact)
    return pickle.loads(payload)


def verified_result(archive: Path, artifact: str, signing_key: str) -> bytes:
    """The pickled training result of a job's model.tar.gz, only when its HMAC matches the key given to
    that job: any role that may write the models/ prefix could otherwise replace it with a pickle that
    runs code in the flow. Raises SageMakerJobError naming the artifact, before anything is unpickled."""
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        if RESULT_FILE not in names:
            raise SageMakerJobError(f"{artifact} holds no {RESULT_FILE}")
        payload = tar.extractfile(RESULT_FILE).read()
        signature = tar.extractfile(SIGNATURE_FILE).read().decode().strip() if SIGNATURE_FILE in names else ""
    expected = hmac.new(signing_key.encode(), payload, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        problem = "is not signed" if not signature else "is signed with another key than its job's"
        raise SageMakerJobError(f"{artifact}: {RESULT_FILE} {problem}; refused unread (was the models/ prefix "
                                "written by something other than this training job?)")
    return payload


def batch_score_on_sagemaker(model, version: str, features: pd.DataFrame,
                             settings: SageMakerSettings | None = None) -> pd.DataFrame:
    """Predictions and top reasons for every row of `features` from a Batch Transform job; a frame
    with customer_id, predicted_clv_12m, top_reasons, reason_contributions in the order of `features`."""
    settings = settings or SageMakerSettings.from_env()
    client, s3 = sagemaker_client(settings), storage.s3_client()
    name = job_name("score")
    model_uri = settings.uri("champion", f"v{version}", "model.tar.gz")
    _put_model_archive(s3, model, model_uri)
    model_name = f"clv-v{version}-{name[-22:]}"[:63]
    client.create_model(**model_request(settings, model_name, model_uri))
    input_uri = settings.uri("scoring", name, "input") + "/"
    output_uri = settings.uri("scoring", name, "output")
    shards = []
    for number, start in enumerate(range(0, len(features), SHARD_ROWS)):
        shard = f"shard-{number:05d}.parquet"
        _put_parquet(s3, features.iloc[start:start + SHARD_ROWS], input_uri + shard)
        shards.append(shard)
    client.create_transform_job(**transform_job_request(settings, name, model_name, input_uri, output_uri))
    wait_for_job(client, "transform", name, settings)
    parts = []
    for shard in shards:
        bucket, key = storage.split_s3(f"{output_uri}/{shard}.out")
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey as exc:
            raise SageMakerJobError(f"transform job {name} wrote no output for {shard} (s3://{bucket}/{key})") from exc
        parts.append(pd.read_csv(io.BytesIO(body), dtype={"customer_id": str}))
    scored = pd.concat(parts, ignore_index=True)
    if len(scored) != len(features) or not scored["customer_id"].equals(features["customer_id"].astype(str)
                                                                         .reset_index(drop=True)):
        raise SageMakerJobError(f"transform job {name} returned {len(scored)} rows for {len(features)} customers")
    return scored


def _put_parquet(s3, frame: pd.DataFrame, uri: str) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    bucket, key = storage.split_s3(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def _put_model_archive(s3, model, uri: str) -> None:
    """model.tar.gz with model.pkl at its root, as SageMaker unpacks it into /opt/ml/model."""
    payload = pickle.dumps(model)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.pkl")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    bucket, key = storage.split_s3(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
