"""Checks at the start of a run that the MLflow store is the one the warehouse was served from.

A corrupt store must fail before hours of landing, dbt and training, with one line; a missing store next
to a warehouse that already publishes scores would silently start a new registry whose first version
becomes champion without being compared with what is served, so it is refused unless the operator says
`--new-registry`."""

from __future__ import annotations

from pathlib import Path


class TrackingStoreError(ValueError):
    """The MLflow store is unreachable, not an MLflow store, or not the warehouse's registry."""


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_tracking_store(uri: str, model_name: str, published: tuple[str, str] | None,
                         new_registry: bool = False, warehouse: str | None = None) -> None:
    """Raise TrackingStoreError when the store cannot be read, when the warehouse publishes scores of
    `model_name` (`published` = (model_name, version) of clv_scores) and the store lacks that model,
    unless `new_registry`, or when the store's `model_name` was trained on another warehouse than
    `warehouse` (`clv.pipeline.Run.identity`): its champion would score another shop's customers."""
    path = sqlite_path(uri)
    missing = path is not None and (not path.exists() or path.stat().st_size == 0)
    served_model = published is not None and published[0] == model_name
    if missing:
        if served_model and not new_registry:
            raise TrackingStoreError(
                f"the MLflow store {uri} does not exist, but the warehouse publishes scores of {model_name} version "
                f"{published[1]}: point MLFLOW_TRACKING_URI (or CLV_HOME) at that store, or pass --new-registry to "
                "start a new registry (its first version is then gated against last year's spend only)")
        return
    from mlflow.tracking import MlflowClient

    try:
        found = MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models(
            filter_string=f"name = '{model_name}'", max_results=1)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, OS and MLflow errors all mean: not usable
        cause = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise TrackingStoreError(f"the MLflow store {uri} cannot be read as an MLflow store ({cause}); restore it "
                                 "from a backup or point MLFLOW_TRACKING_URI at the right store") from None
    history = [v for v in (found[0].tags.get("champion_history", "") if found else "").split(",") if v]
    if history and "champion" not in (found[0].aliases or {}):
        raise TrackingStoreError(
            f"the MLflow store {uri}: {model_name} has no champion alias, but version {history[-1]} held it "
            f"(champion history {', '.join(history)}); clv never removes it (a rollback moves it), so the "
            f"registry was changed by hand: restore it with `clv promote {history[-1]} --reason ...` (or another "
            "version), instead of serving the fallback")
    champion = (found[0].aliases or {}).get("champion") if found else None
    if champion is not None:
        files = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_download_uri(model_name,
                                                                                                 str(champion))
        if files.startswith("file://") and not Path(files[len("file://"):]).is_dir():
            raise TrackingStoreError(
                f"the MLflow store {uri}: the files of {model_name} version {champion} (the champion) are missing "
                f"({files[len('file://'):]}): restore the artifact store from a backup, or promote another version "
                "with `clv promote VERSION --reason ...`")
    owner = found[0].tags.get("warehouse") if found else None
    if warehouse and owner and owner != warehouse:
        raise TrackingStoreError(
            f"the MLflow store {uri} holds {model_name} of the warehouse {owner}, not of this run's {warehouse}: "
            "its models would score another shop's customers and its exports would overwrite that shop's. Give "
            "each shop its own CLV_HOME (or MLFLOW_TRACKING_URI, or model_name in the settings file); if this "
            f"is the same warehouse moved, set the registered model's tag `warehouse` to {warehouse} in MLflow")
    if served_model and not found and not new_registry:
        raise TrackingStoreError(
            f"the MLflow store {uri} has no registered model {model_name}, but the warehouse publishes scores of its "
            f"version {published[1]}: point MLFLOW_TRACKING_URI at the store that holds it, or pass --new-registry")
