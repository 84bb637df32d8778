"""register: fan-in of every trained candidate into the model registry."""

from kfp.dsl import Input, Model

from pipelines.components.common import component


@component
def register(
    models: Input[list[Model]],
    model_name: str,
    model_version: str,
    registry_uri: str,
    dataset_hash: str,
    scaler_kind: str = "standard",
    source: str = "",
    run_id: str = "",
    job_id: str = "",
):
    """Register each candidate under model_name/model_version/k; a duplicate fails the run."""
    from pipelines.components.report import reporting
    from pipelines.registry import ModelRecord, open_registry

    with reporting("register", version=model_version) as info:
        registry = open_registry(registry_uri)
        for artifact in models:
            meta = artifact.metadata
            registry.register(
                ModelRecord(
                    model_name=model_name,
                    model_version=model_version,
                    k=int(meta["k"]),
                    accuracy=float(meta["accuracy"]),
                    cv_accuracy=float(meta["cv_accuracy"]),
                    uri=artifact.uri,
                    params={
                        "k": int(meta["k"]),
                        "scaler": scaler_kind,
                        "source": source or "sklearn:iris",
                        "sha256": str(meta.get("sha256", "")),
                    },
                    dataset_hash=dataset_hash,
                    run_id=run_id or job_id,
                )
            )
        info.update(registered=len(models))
