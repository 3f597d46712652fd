"""The scale path offline: the weekly flow with storage on S3 and training and scoring on SageMaker,
against moto (an in-process stand-in for AWS; no AWS account is used). moto accepts the requests and
reports every job Completed at once without running anything, so the test plays the container: after
each job it runs the CLV image's own entry points (deployments/sagemaker/train.py, and serve.py over
HTTP for Batch Transform) on the job's S3 inputs and writes the job's S3 outputs. The requests the flow
sends are asserted as SageMaker and S3 recorded them."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import threading
import urllib.request
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clv.cloud import sagemaker_jobs
from clv.cloud import storage
from clv.config import REPO_ROOT
from clv.dbt_manifest import history_length_dependent_columns
from models_ml.zoo import default_spec
from tests.conftest import moto_s3

pytestmark = pytest.mark.slow
BUCKET = "clv-test-bucket"
ROLE = "arn:aws:iam::123456789012:role/clv-sagemaker-execution"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/clv:test"
CONTAINER_CODE = REPO_ROOT / "deployments" / "sagemaker"


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"CLV_STORAGE_URL": f"s3://{BUCKET}/weekly",
                        "CLV_TRAINING_BACKEND": "sagemaker", "CLV_SCORING_BACKEND": "sagemaker",
                        "CLV_SAGEMAKER_ROLE_ARN": ROLE, "CLV_SAGEMAKER_IMAGE_URI": IMAGE,
                        "CLV_SAGEMAKER_TRANSFORM_INSTANCE": "ml.c5.2xlarge",
                        "CLV_SAGEMAKER_POLL_SECONDS": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(CONTAINER_CODE))
    with moto_s3(monkeypatch, BUCKET) as s3:
        import boto3

        real_client = sagemaker_jobs.sagemaker_client

        def client_keeping_job_environments(settings):
            """moto drops a training job's Environment; the container played below needs it."""
            client = real_client(settings)
            create = client.create_training_job

            def create_training_job(**request):
                SENT_ENVIRONMENT[request["TrainingJobName"]] = request.get("Environment", {})
                return create(**request)

            client.create_training_job = create_training_job
            return client

        monkeypatch.setattr(sagemaker_jobs, "sagemaker_client", client_keeping_job_environments)
        yield s3, boto3.client("sagemaker", region_name="eu-west-1")


SENT_ENVIRONMENT: dict[str, dict] = {}  # training job name -> the Environment the flow sent it


def play_container(kind: str, name: str, tmp: Path) -> None:
    """Do what the CLV image would have done for this job, reading and writing S3 (moto)."""
    import boto3

    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    if kind == "training":
        job = sm.describe_training_job(TrainingJobName=name)
        channel = tmp / "input" / "data" / "train"
        channel.mkdir(parents=True)
        for url in storage.list_s3(job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] + "*"):
            bucket, key = storage.split_s3(url)
            s3.download_file(bucket, key, str(channel / Path(key).name))
        (tmp / "input" / "config").mkdir()
        (tmp / "input" / "config" / "hyperparameters.json").write_text(json.dumps(job["HyperParameters"]))
        model_dir = tmp / "model"
        import train  # deployments/sagemaker/train.py, as the image runs it

        env = {"SM_CHANNEL_TRAIN": str(channel), "SM_MODEL_DIR": str(model_dir), "SM_INPUT_DIR": str(tmp / "input"),
               **SENT_ENVIRONMENT[name]}  # the signing key the flow gave this job
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            train.main(train._hyperparameter_args())
        archive = tmp / "model.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in model_dir.iterdir():
                tar.add(path, arcname=path.name)
        bucket, key = storage.split_s3(job["ModelArtifacts"]["S3ModelArtifacts"])
        s3.upload_file(str(archive), bucket, key)
        return
    job = sm.describe_transform_job(TransformJobName=name)
    model = sm.describe_model(ModelName=job["ModelName"])["PrimaryContainer"]
    bucket, key = storage.split_s3(model["ModelDataUrl"])
    model_dir = tmp / "model"
    model_dir.mkdir(parents=True)
    tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).extractall(model_dir)
    import serve  # deployments/sagemaker/serve.py: the HTTP contract of a Batch Transform container

    server = serve.server(str(model_dir), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert urllib.request.urlopen(f"{base}/ping").status == 200
        source = job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        for url in storage.list_s3(source + "*"):
            bucket, key = storage.split_s3(url)
            request = urllib.request.Request(f"{base}/invocations", method="POST",
                                             data=s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
                                             headers={"Content-Type": job["TransformInput"]["ContentType"]})
            output = job["TransformOutput"]["S3OutputPath"] + "/" + Path(key).name + ".out"
            out_bucket, out_key = storage.split_s3(output)
            s3.put_object(Bucket=out_bucket, Key=out_key, Body=urllib.request.urlopen(request).read())
    finally:
        server.shutdown()


def test_weekly_flow_on_s3_and_sagemaker(prefect_server, clv_home, synthetic_shop, aws, monkeypatch, tmp_path):
    s3, sm = aws
    real_wait = sagemaker_jobs.wait_for_job
    jobs = []

    def wait_then_play(client, kind, name, settings):
        description = real_wait(client, kind, name, settings)  # moto: Completed at once
        jobs.append((kind, name))
        play_container(kind, name, tmp_path / name)
        return description

    monkeypatch.setattr(sagemaker_jobs, "wait_for_job", wait_then_play)
    from flows.weekly import weekly_clv_pipeline
    from models_ml import registry

    summary = weekly_clv_pipeline(orders=str(synthetic_shop["orders"]), customers=str(synthetic_shop["customers"]),
                                  events=str(synthetic_shop["events"]))
    cutoff = summary["cutoff"]

    # one training job and one transform job, with the requests the settings call for
    assert [kind for kind, _ in jobs] == ["training", "transform"]
    training = sm.describe_training_job(TrainingJobName=jobs[0][1])
    assert training["AlgorithmSpecification"]["TrainingImage"] == IMAGE and training["RoleArn"] == ROLE
    assert training["ResourceConfig"] == {"InstanceType": "ml.m5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}
    # the columns the offset model leaves out travel from the build's dbt manifest to the job
    dependent = history_length_dependent_columns()
    assert "revenue_total" in dependent
    assert training["HyperParameters"] == {"horizon_days": "365",
                                           "model_spec": json.dumps(default_spec(), sort_keys=True),
                                           "history_length_dependent": ",".join(dependent)}
    train_uri = training["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert train_uri == f"s3://{BUCKET}/weekly/training/{jobs[0][1]}/"
    assert training["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/weekly/models"
    transform = sm.describe_transform_job(TransformJobName=jobs[1][1])
    assert transform["TransformResources"] == {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1}
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == \
        f"s3://{BUCKET}/weekly/scoring/{jobs[1][1]}/input/"
    assert transform["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/weekly/scoring/{jobs[1][1]}/output"
    model = sm.describe_model(ModelName=transform["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/weekly/champion/v1/model.tar.gz"
    assert model["ExecutionRoleArn"] == ROLE

    # S3 holds the training set, the model, the shards and their outputs, MLflow's artifacts, the export
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"weekly/training/{jobs[0][1]}/training_set.parquet" in keys
    assert f"weekly/models/{jobs[0][1]}/output/model.tar.gz" in keys
    assert {f"weekly/scoring/{jobs[1][1]}/input/shard-00000.parquet",
            f"weekly/scoring/{jobs[1][1]}/output/shard-00000.parquet.out"} <= keys
    assert any(k.startswith("weekly/mlflow-artifacts/") for k in keys)
    assert summary["scores_export"] == f"s3://{BUCKET}/weekly/clv_scores/cutoff={cutoff}/clv_scores.parquet"

    # the remotely trained model is registered like a local one, and the transform output is what BI reads
    assert summary["decision"]["outcome"] == "champion" and registry.champion_version("clv_xgboost") == "1"
    assert summary["decision"]["backtest"]["metrics"]["candidate"]["normalized_gini"] > 0.5
    with duckdb.connect(str(clv_home / "warehouse" / "clv.duckdb"), read_only=True) as con:
        scores = con.execute("select * from clv_scores order by customer_id").df()
    exported = pd.read_parquet(io.BytesIO(s3.get_object(
        Bucket=BUCKET, Key=f"weekly/clv_scores/cutoff={cutoff}/clv_scores.parquet")["Body"].read()))
    assert len(scores) == summary["customers_scored"] == len(exported) > 0
    assert scores["top_reasons"].str.count("; ").eq(2).all()
    assert scores["reason_contributions"].map(lambda r: len(json.loads(r))).eq(3).all()
    # the scores equal what the registered champion gives locally
    champion, _, _ = registry.load_model_by_alias("clv_xgboost")
    assert not set(dependent) & set(champion.columns_) and "revenue_sum_365d" in champion.columns_
    with duckdb.connect(str(clv_home / "warehouse" / "clv.duckdb"), read_only=True) as con:
        features = con.execute("select * from customer_features where cutoff_date = ? order by customer_id",
                               [cutoff]).df()
    assert scores["predicted_clv_12m"].to_numpy() == pytest.approx(champion.predict(features), rel=1e-5)


def test_sagemaker_settings_name_what_is_missing(monkeypatch):
    for name in ("CLV_SAGEMAKER_ROLE_ARN", "CLV_SAGEMAKER_IMAGE_URI", "CLV_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with pytest.raises(ValueError, match="CLV_SAGEMAKER_ROLE_ARN, CLV_SAGEMAKER_IMAGE_URI, CLV_STORAGE_URL"):
        sagemaker_jobs.SageMakerSettings.from_env()
    monkeypatch.setenv("CLV_TRAINING_BACKEND", "emr")
    with pytest.raises(ValueError, match="CLV_TRAINING_BACKEND must be local or sagemaker"):
        sagemaker_jobs.training_backend()


def test_container_entry_points_are_importable_without_the_platform():
    """The image holds models_ml and deployments/sagemaker only: no prefect, mlflow or clv imports."""
    for module in ("train.py", "inference.py", "serve.py", "entrypoint.py"):
        text = (CONTAINER_CODE / module).read_text()
        assert "import prefect" not in text and "import mlflow" not in text and "from clv" not in text
    for path in (REPO_ROOT / "models_ml").glob("*.py"):
        imports = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
        assert not [line for line in imports if "prefect" in line or line.startswith("from clv")], path
    sys.modules.pop("train", None)


def _policy_allows(path: Path, action: str, resource: str) -> bool:
    """Whether an Allow statement of the policy matches the action and the resource (IAM wildcards; the
    conditions only narrow further and are not evaluated)."""
    from fnmatch import fnmatchcase

    text = (path.read_text().replace("CLV_BUCKET", "clv-bucket").replace("CLV_PREFIX", "prod")
            .replace("ACCOUNT_ID", "123456789012"))
    document = json.loads(text)
    listed = lambda value: [value] if isinstance(value, str) else value  # noqa: E731
    return any(statement["Effect"] == "Allow"
               and any(fnmatchcase(action, a) for a in listed(statement["Action"]))
               and any(fnmatchcase(resource, r) for r in listed(statement["Resource"]))
               for statement in (document.get("PermissionsPolicy") or document)["Statement"])


S3 = "arn:aws:s3:::clv-bucket/prod/"


def test_iam_policies_allow_every_call_the_code_makes():
    """Each AWS API the job code calls is allowed to the role that makes it, on the resource it touches."""
    import re

    iam = REPO_ROOT / "deployments" / "iam"
    pipeline, execution = iam / "clv-pipeline-policy.json", iam / "sagemaker-execution-policy.json"
    redshift = iam / "redshift-copy-role.json"
    code = (REPO_ROOT / "clv" / "cloud" / "sagemaker_jobs.py").read_text()
    called = {"sagemaker:" + "".join(part.title() for part in name.split("_"))
              for name in re.findall(r"client\.((?:create|describe|stop)_\w+)\b", code)}
    assert called and {"sagemaker:StopTrainingJob", "sagemaker:StopTransformJob"} <= called
    for action in called:
        kind = {"TrainingJob": "training-job", "Model": "model", "TransformJob": "transform-job"}[
            action.split(":")[1].removeprefix("Create").removeprefix("Describe").removeprefix("Stop")]
        assert _policy_allows(pipeline, action, f"arn:aws:sagemaker:eu-west-1:123456789012:{kind}/clv-x"), action
    needed = [  # (role policy, action, resource) as the code uses them
        (pipeline, "s3:PutObject", S3 + "training/clv-train-1/training_set.parquet"),
        (pipeline, "s3:PutObject", S3 + "champion/v3/model.tar.gz"),
        (pipeline, "s3:PutObject", S3 + "scoring/clv-score-1/input/shard-00000.parquet"),
        (pipeline, "s3:PutObject", S3 + "landing/orders/part.csv.gz"),
        (pipeline, "s3:PutObject", S3 + "publish/clv_scores/20240310.csv.gz"),
        (pipeline, "s3:PutObject", S3 + "mlflow-artifacts/1/abc/artifacts/model.pkl"),
        (pipeline, "s3:GetObject", S3 + "scoring/clv-score-1/output/shard-00000.parquet.out"),
        (pipeline, "s3:GetObject", S3 + "models/clv-train-1/output/model.tar.gz"),
        (pipeline, "iam:PassRole", "arn:aws:iam::123456789012:role/clv-sagemaker-execution"),
        (redshift, "s3:GetObject", S3 + "landing/orders/part.csv.gz"),
        (redshift, "s3:GetObject", S3 + "publish/clv_scores/20240310.csv.gz"),
        (execution, "s3:GetObject", S3 + "training/clv-train-1/training_set.parquet"),
        (execution, "s3:GetObject", S3 + "champion/v3/model.tar.gz"),
        (execution, "s3:GetObject", S3 + "scoring/clv-score-1/input/shard-00000.parquet"),
        (execution, "s3:PutObject", S3 + "models/clv-train-1/output/model.tar.gz"),
        (execution, "s3:PutObject", S3 + "scoring/clv-score-1/output/shard-00000.parquet.out"),
        (execution, "ecr:BatchGetImage", "arn:aws:ecr:eu-west-1:123456789012:repository/clv"),
        (execution, "logs:PutLogEvents",
         "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/TrainingJobs:log-stream:clv-train-1/algo-1"),
    ]
    assert [n[1:] for n in needed if not _policy_allows(*n)] == []
    forbidden = [  # least privilege: what each role must not do
        (pipeline, "s3:DeleteObject", S3 + "landing/orders/part.csv.gz"),
        (pipeline, "s3:PutObject", "arn:aws:s3:::other-bucket/x"),
        (redshift, "s3:GetObject", S3 + "mlflow-artifacts/1/abc/artifacts/model.pkl"),
        (redshift, "s3:PutObject", S3 + "landing/orders/part.csv.gz"),
        (execution, "s3:PutObject", S3 + "mlflow-artifacts/1/abc/artifacts/model.pkl"),  # pickles the worker loads
        (execution, "s3:PutObject", S3 + "champion/v3/model.tar.gz"),
        (execution, "s3:PutObject", S3 + "models/registry.pkl"),
        (execution, "s3:PutObject", S3 + "landing/orders/part.csv.gz"),
        (execution, "s3:PutObject", S3 + "publish/clv_scores/20240310.csv.gz"),
        (execution, "ecr:BatchGetImage", "arn:aws:ecr:eu-west-1:123456789012:repository/other-team"),
        (execution, "logs:PutLogEvents", "arn:aws:logs:eu-west-1:123456789012:log-group:/other/app:log-stream:x"),
    ]
    assert [f[1:] for f in forbidden if _policy_allows(*f)] == []
    trust = json.loads((iam / "sagemaker-execution-trust.json").read_text())
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    # confused deputy: only this account's clv-* SageMaker resources may assume the roles
    assert trust["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "ACCOUNT_ID"},
        "ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:*:ACCOUNT_ID:*/clv-*"}}
    copy_trust = json.loads(redshift.read_text())["TrustPolicy"]["Statement"][0]
    assert copy_trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "ACCOUNT_ID"}}


def test_a_wait_that_ends_early_stops_the_sagemaker_job_and_a_finished_job_is_left_alone():
    """A step that timed out (or was cancelled) left its training job running and billing."""
    from clv.cloud import sagemaker_jobs

    class Jobs:  # stands in for boto3's SageMaker client (no AWS offline)
        def __init__(self, statuses):
            self.statuses, self.stopped = list(statuses), []

        def describe_training_job(self, TrainingJobName):
            return {"TrainingJobStatus": self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]}

        def stop_training_job(self, TrainingJobName):
            self.stopped.append(TrainingJobName)

    settings = sagemaker_jobs.SageMakerSettings("role", "image", "s3://b/p", "eu-west-1", max_runtime_seconds=0,
                                                poll_seconds=0.01)
    done = Jobs(["InProgress", "Completed"])
    assert sagemaker_jobs.wait_for_job(done, "training", "clv-train-1", replace(settings, max_runtime_seconds=60)
                                       )["TrainingJobStatus"] == "Completed"
    assert done.stopped == []
    stuck = Jobs(["InProgress"])
    with pytest.raises(TimeoutError, match="still InProgress after 0 s, its maximum runtime"):
        sagemaker_jobs.wait_for_job(stuck, "training", "clv-train-2", settings)
    assert stuck.stopped == ["clv-train-2"]
    interrupted = Jobs(["InProgress"])

    def interrupt(_):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sagemaker_jobs.time, "sleep", interrupt)
        with pytest.raises(KeyboardInterrupt):
            sagemaker_jobs.wait_for_job(interrupted, "training", "clv-train-3", replace(settings, max_runtime_seconds=60))
    assert interrupted.stopped == ["clv-train-3"]
    failed = Jobs(["Failed"])
    with pytest.raises(sagemaker_jobs.SageMakerJobError):
        sagemaker_jobs.wait_for_job(failed, "training", "clv-train-4", settings)
    assert failed.stopped == []  # it ended on its own


class _RunsCodeWhenUnpickled:
    """What a forged training result could hold: unpickling it writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


def test_a_training_result_not_signed_by_its_job_is_refused_unread(aws, monkeypatch, tmp_path):
    """With the SageMaker backend the flow unpickled training_result.pkl from a prefix any clv-* job's role
    may write. The flow now gives each job a fresh key (its environment) and unpickles only a result whose
    HMAC matches: a forged one, unsigned or signed with another key, is refused before it is read."""
    import hashlib
    import hmac
    import pickle

    import boto3

    marker = tmp_path / "forged-code-ran"

    def container_writing(payload: bytes, key_of):
        def play(client, kind, name, settings):
            job = boto3.client("sagemaker").describe_training_job(TrainingJobName=name)
            archive = tmp_path / f"{name}.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                members = {"training_result.pkl": payload}
                key = key_of(job)
                if key is not None:
                    members["training_result.pkl.hmac"] = hmac.new(key.encode(), payload, hashlib.sha256).hexdigest().encode()
                for member, data in members.items():
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            bucket, key_name = storage.split_s3(job["ModelArtifacts"]["S3ModelArtifacts"])
            boto3.client("s3").upload_file(str(archive), bucket, key_name)
            return job
        return play

    rows = pd.DataFrame({"customer_id": ["1"], "cutoff_date": ["2024-01-01"]})
    forged = pickle.dumps(_RunsCodeWhenUnpickled(marker))
    for key_of, problem in [(lambda job: None, "is not signed"),
                            (lambda job: "a-key-the-job-never-had", "is signed with another key")]:
        monkeypatch.setattr(sagemaker_jobs, "wait_for_job", container_writing(forged, key_of))
        with pytest.raises(sagemaker_jobs.SageMakerJobError, match=f"training_result.pkl {problem}.*refused unread"):
            sagemaker_jobs.train_on_sagemaker(rows, 365, spec={"type": "test"})
        assert not marker.exists()
    honest = pickle.dumps({"model": "fitted"})
    monkeypatch.setattr(sagemaker_jobs, "wait_for_job",
                        container_writing(honest, lambda job: SENT_ENVIRONMENT[job["TrainingJobName"]]["CLV_RESULT_SIGNING_KEY"]))
    assert sagemaker_jobs.train_on_sagemaker(rows, 365, spec={"type": "test"}) == {"model": "fitted"}


def test_no_password_in_a_settings_repr():
    from clv.warehouse.postgres import PostgresSettings
    from clv.warehouse.redshift import RedshiftSettings

    shown = repr(PostgresSettings("h", 5432, "u", "pg-s3cret", "clv")) + repr(
        RedshiftSettings("h", 5439, "u", "rs-s3cret", "analytics", "arn:role", "s3://b/p"))
    assert "s3cret" not in shown and "host='h'" in shown
