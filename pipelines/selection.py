"""The model-selection pipeline: pick the best candidate of one version (if good enough), copy it to the
serving store (model PVC on a cluster) byte-for-byte as trained, mark it selected; its exit handler
continues the event chain."""

from typing import Any

from kfp import dsl
from kfp.dsl import Model

from events.catalogue import MODEL_SELECTION
from pipelines.components.announce import announce
from pipelines.components.ensure_pvc import ensure_pvc
from pipelines.components.select_model import select_model
from pipelines.components.serve_model import serve_model
from pipelines.targets import (
    CLUSTER,
    CLUSTER_REGISTRY_URI,
    CLUSTER_SERVING_URI_PREFIX,
    MOUNT,
    PVC_NAME,
    check_target,
    mount_model_pvc,
)

PIPELINE_NAME = "kfchain-model-selection"


def build_selection_pipeline(target: str = CLUSTER) -> Any:
    """The model-selection pipeline for ``target`` (``local`` or ``cluster``)."""
    on_cluster = check_target(target) == CLUSTER

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Select the best model of a version and put it where KServe serves it.",
    )
    def model_selection(
        model_version: str,
        model_name: str = "iris",
        chain_id: str = "",
        causation_id: str = "",
        registry_uri: str = CLUSTER_REGISTRY_URI,
        serving_root: str = MOUNT,
        serving_uri_prefix: str = CLUSTER_SERVING_URI_PREFIX,
        min_accuracy: float = 0.9,
        run_id: str = "",
        kafka_bootstrap_servers: str = "",
        kafka_topic: str = "",
        notes_dir: str = "",
        pvc_size: str = "1Gi",
        pvc_storage_class: str = "",
    ):
        end = announce(
            pipeline=MODEL_SELECTION,
            model_name=model_name,
            model_version=model_version,
            registry_uri=registry_uri,
            run_id=run_id,
            job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            chain_id=chain_id,
            causation_id=causation_id,
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            kafka_topic=kafka_topic,
            notes_dir=notes_dir,
        ).set_caching_options(False)
        with dsl.ExitHandler(end, name="model-selection"):
            choice = select_model(
                model_name=model_name,
                model_version=model_version,
                registry_uri=registry_uri,
                min_accuracy=min_accuracy,
            )
            choice.set_caching_options(False)
            chosen = dsl.importer(artifact_uri=choice.outputs["uri"], artifact_class=Model, reimport=False)
            served = serve_model(
                model=chosen.output,
                model_name=model_name,
                model_version=model_version,
                k=choice.outputs["k"],
                sha256=choice.outputs["sha256"],
                registry_uri=registry_uri,
                serving_root=serving_root,
                serving_uri_prefix=serving_uri_prefix,
            ).set_caching_options(False)
            if on_cluster:
                pvc = ensure_pvc(pvc_name=PVC_NAME, size=pvc_size, storage_class=pvc_storage_class)
                pvc.set_caching_options(False)
                choice.after(pvc)
                mount_model_pvc(choice)
                mount_model_pvc(served)
        if on_cluster:
            mount_model_pvc(end)

    return model_selection
