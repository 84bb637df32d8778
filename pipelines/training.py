"""The training pipeline: fetch -> normalize -> train (one KNN per K, ParallelFor) -> register,
inside an exit handler that announces the run's end on Kafka (DESIGN.md, "The model")."""

from typing import Any

from kfp import dsl

from events.catalogue import TRAINING
from pipelines.components.announce import announce
from pipelines.components.ensure_pvc import ensure_pvc
from pipelines.components.fetch import fetch
from pipelines.components.normalize import normalize
from pipelines.components.register import register
from pipelines.components.train import train
from pipelines.targets import (
    CLUSTER,
    CLUSTER_REGISTRY_URI,
    PVC_NAME,
    TRAIN_PARALLELISM,
    check_target,
    mount_model_pvc,
)

PIPELINE_NAME = "kfchain-training"


def build_training_pipeline(target: str = CLUSTER, parallelism: int = TRAIN_PARALLELISM) -> Any:
    """The training pipeline for ``target`` (``local`` or ``cluster``)."""
    on_cluster = check_target(target) == CLUSTER

    @dsl.pipeline(name=PIPELINE_NAME, description="Train one iris KNN model per K and register them all.")
    def training(
        model_name: str = "iris",
        model_version: str = "",
        k_values: list = [1, 3, 5, 7, 9],  # noqa: B006 - a KFP pipeline parameter default, never mutated
        scaler: str = "standard",
        source: str = "",
        test_size: float = 0.2,
        cv_folds: int = 5,
        registry_uri: str = CLUSTER_REGISTRY_URI,
        run_id: str = "",
        kafka_bootstrap_servers: str = "",
        kafka_topic: str = "",
        notes_dir: str = "",
        pvc_size: str = "1Gi",
        pvc_storage_class: str = "",
    ):
        end = announce(
            pipeline=TRAINING,
            model_name=model_name,
            model_version=model_version,
            registry_uri=registry_uri,
            run_id=run_id,
            job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            kafka_topic=kafka_topic,
            notes_dir=notes_dir,
        ).set_caching_options(False)
        with dsl.ExitHandler(end, name="training"):
            data = fetch(source=source).set_caching_options(False)
            split = normalize(dataset=data.outputs["dataset"], scaler_kind=scaler, test_size=test_size)
            with dsl.ParallelFor(k_values, parallelism=parallelism) as k:
                candidate = train(
                    train=split.outputs["train"],
                    test=split.outputs["test"],
                    scaler=split.outputs["scaler"],
                    k=k,
                    cv_folds=cv_folds,
                )
            registered = register(
                models=dsl.Collected(candidate.outputs["model"]),
                model_name=model_name,
                model_version=model_version,
                registry_uri=registry_uri,
                dataset_hash=data.outputs["dataset_hash"],
                scaler_kind=scaler,
                source=source,
                run_id=run_id,
                job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            ).set_caching_options(False)
            if on_cluster:
                pvc = ensure_pvc(pvc_name=PVC_NAME, size=pvc_size, storage_class=pvc_storage_class)
                pvc.set_caching_options(False)
                registered.after(pvc)
                mount_model_pvc(registered)
        if on_cluster:
            mount_model_pvc(end)

    return training
