"""Cluster rollout against kmock's KubernetesEmulator: create, patch, canary, promote, roll back.

The emulator stores what the backend sends; the test plays the KServe controller by writing the
status (revisions, conditions) the way KServe does once it has acted on a change.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from services.rollout.base import RolloutFailed
from services.rollout.kserve import (
    MODEL_NAME_ENV,
    MODEL_VERSION_ENV,
    PREVIOUS_ANNOTATION,
    VERSION_ANNOTATION,
    KServeRollout,
    KServeRolloutSettings,
    build_inference_service,
    to_manifest,
)
from tests.support.crd_schema import validate

RESOURCE = kmock.resource("serving.kserve.io", "v1beta1", "inferenceservices")
NAMESPACE = "kfchain-test"


def settings(**overrides: Any) -> KServeRolloutSettings:
    base = KServeRolloutSettings(namespace=NAMESPACE, ready_timeout_s=5.0, poll_interval_s=0.02)
    return KServeRolloutSettings(**{**base.__dict__, **overrides})


def backend_for(emulator: kmock.KubernetesEmulator, **overrides: Any) -> KServeRollout:
    configuration = k8s.Configuration(host=str(emulator.url).rstrip("/"))
    return KServeRollout(settings(**overrides), api=k8s.CustomObjectsApi(k8s.ApiClient(configuration)))


def isvc(emulator: kmock.KubernetesEmulator) -> Any:
    return emulator.objects[RESOURCE, NAMESPACE, "iris"]


async def controller(
    emulator: kmock.KubernetesEmulator,
    storage_uri: str,
    revision: str,
    outcome: str = "ready",
    previous_ready: str | None = None,
) -> None:
    """Wait until the spec asks for ``storage_uri``, then report the new revision Ready or failed."""
    for _ in range(500):
        key = (RESOURCE, NAMESPACE, "iris")
        if key in emulator.objects and not emulator.objects[key].deleted:
            spec_uri = (
                emulator.objects[key].get("spec", {}).get("predictor", {}).get("model", {}).get("storageUri")
            )
            if spec_uri == storage_uri:
                break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"the backend never asked for {storage_uri}")
    if outcome == "ready":
        status = {
            "url": "http://iris.kfchain-test.example.com",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PredictorReady", "status": "True"}],
            "components": {"predictor": {"latestCreatedRevision": revision, "latestReadyRevision": revision}},
        }
    elif outcome == "failed":
        status = {
            "conditions": [
                {"type": "Ready", "status": "True"},  # the previous revision still serves
                {
                    "type": "PredictorReady",
                    "status": "False",
                    "reason": "RevisionFailed",
                    "message": "Revision iris-predictor-00002 failed: model.joblib: unsupported pickle protocol",
                },
            ],
            "components": {
                "predictor": {"latestCreatedRevision": revision, "latestReadyRevision": previous_ready}
            },
        }
    else:  # "stuck": the controller created the revision, it never becomes Ready
        status = {
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {
                "predictor": {"latestCreatedRevision": revision, "latestReadyRevision": previous_ready}
            },
        }
    emulator.objects[key].patch({"status": status})


async def roll_out(backend: KServeRollout, version: str, *controllers: Any) -> Any:
    result, *_ = await asyncio.gather(
        asyncio.to_thread(backend.rollout, "iris", version, f"pvc://model-pvc/iris/{version}"), *controllers
    )
    return result


def test_the_built_inference_service_is_valid_against_the_kserve_crd() -> None:
    manifest = to_manifest(
        build_inference_service(
            settings(canary_percent=10, runtime="kfchain-predictor"),
            "iris",
            "v7",
            "pvc://model-pvc/iris/v7",
            canary_percent=10,
        )
    )
    validate(manifest, "services.rollout.kserve")
    predictor = manifest["spec"]["predictor"]
    assert predictor["model"] == {
        "modelFormat": {"name": "sklearn"},
        "storageUri": "pvc://model-pvc/iris/v7",
        "runtime": "kfchain-predictor",
        "env": [{"name": MODEL_NAME_ENV, "value": "iris"}, {"name": MODEL_VERSION_ENV, "value": "v7"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
    }
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 10)
    assert predictor["canaryTrafficPercent"] == 10


async def test_first_rollout_creates_then_a_new_version_patches(kmock: kmock.KubernetesEmulator) -> None:
    backend = backend_for(kmock)
    created = await roll_out(
        backend, "v1", controller(kmock, "pvc://model-pvc/iris/v1", "iris-predictor-00001")
    )
    assert created.endpoint == "http://iris.kfchain-test.example.com/v1/models/iris:predict"
    assert created.previous_version is None and created.traffic_percent == 100
    validate(isvc(kmock).raw, "emulator")  # what the cluster holds is a valid InferenceService
    assert isvc(kmock)["metadata"]["annotations"][VERSION_ANNOTATION] == "v1"

    patched = await roll_out(
        backend, "v2", controller(kmock, "pvc://model-pvc/iris/v2", "iris-predictor-00002")
    )
    assert patched.previous_version == "v1" and patched.traffic_percent == 100
    assert await asyncio.to_thread(backend.current_version, "iris") == "v2"
    annotations = isvc(kmock)["metadata"]["annotations"]
    assert (annotations[VERSION_ANNOTATION], annotations[PREVIOUS_ANNOTATION]) == ("v2", "v1")
    assert "canaryTrafficPercent" not in isvc(kmock)["spec"]["predictor"]
    actions = [request.action for request in kmock if request.resource is not None]
    assert (
        actions.count(kmock.action.CREATE) == 1 and kmock.action.UPDATE in actions
    )  # created once, then patched


async def test_canary_goes_to_the_configured_share_then_is_promoted(kmock: kmock.KubernetesEmulator) -> None:
    backend = backend_for(kmock, canary_percent=20)
    await roll_out(backend, "v1", controller(kmock, "pvc://model-pvc/iris/v1", "iris-predictor-00001"))
    outcome = await roll_out(
        backend, "v2", controller(kmock, "pvc://model-pvc/iris/v2", "iris-predictor-00002")
    )
    assert outcome.traffic_percent == 100 and outcome.previous_version == "v1"
    history = [version.get("spec", {}).get("predictor", {}) for version in isvc(kmock).history if version]
    canary_shares = [p.get("canaryTrafficPercent") for p in history]
    assert 20 in canary_shares, "the new revision first got the canary share"
    assert canary_shares[-1] is None, "promotion removed the canary percentage"


@pytest.mark.parametrize(("outcome", "reason"), [("failed", "RevisionFailed"), ("stuck", "not Ready within")])
async def test_a_failed_canary_rolls_back_and_names_the_serving_version(
    kmock: kmock.KubernetesEmulator, outcome: str, reason: str
) -> None:
    backend = backend_for(kmock, canary_percent=10, ready_timeout_s=1.0)
    await roll_out(backend, "v1", controller(kmock, "pvc://model-pvc/iris/v1", "iris-predictor-00001"))
    with pytest.raises(RolloutFailed) as failed:
        await roll_out(
            backend,
            "v2",
            controller(
                kmock, "pvc://model-pvc/iris/v2", "iris-predictor-00002", outcome, "iris-predictor-00001"
            ),
        )
    assert failed.value.serving_version == "v1"
    assert reason in failed.value.reason and "rolled back to v1" in failed.value.reason
    predictor = isvc(kmock)["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 0  # all traffic on the previous revision
    assert predictor["model"]["storageUri"] == "pvc://model-pvc/iris/v1"
    assert await asyncio.to_thread(backend.current_version, "iris") == "v1"


def model_env(emulator: kmock.KubernetesEmulator) -> dict[str, str] | None:
    env = isvc(emulator)["spec"]["predictor"]["model"].get("env")
    return None if env is None else {item["name"]: item["value"] for item in env}


async def test_the_kfchain_runtime_is_told_each_version_and_a_rollback_restores_it(
    kmock: kmock.KubernetesEmulator,
) -> None:
    """The kfchain predictor only sees /mnt/models: the env of each revision names its version."""
    backend = backend_for(kmock, runtime="kfchain-predictor", ready_timeout_s=1.0)
    await roll_out(backend, "v1", controller(kmock, "pvc://model-pvc/iris/v1", "iris-predictor-00001"))
    assert isvc(kmock)["spec"]["predictor"]["model"]["runtime"] == "kfchain-predictor"
    assert model_env(kmock) == {MODEL_NAME_ENV: "iris", MODEL_VERSION_ENV: "v1"}
    validate(isvc(kmock).raw, "emulator")

    with pytest.raises(RolloutFailed):
        await roll_out(
            backend,
            "v2",
            controller(
                kmock, "pvc://model-pvc/iris/v2", "iris-predictor-00002", "failed", "iris-predictor-00001"
            ),
        )
    assert isvc(kmock)["spec"]["predictor"]["model"]["storageUri"] == "pvc://model-pvc/iris/v1"
    assert model_env(kmock) == {MODEL_NAME_ENV: "iris", MODEL_VERSION_ENV: "v1"}, "rolled back with v1's env"

    await roll_out(backend, "v3", controller(kmock, "pvc://model-pvc/iris/v3", "iris-predictor-00003"))
    assert model_env(kmock) == {MODEL_NAME_ENV: "iris", MODEL_VERSION_ENV: "v3"}


async def test_the_stock_runtime_gets_no_env_even_after_the_kfchain_runtime(
    kmock: kmock.KubernetesEmulator,
) -> None:
    kfchain = backend_for(kmock, runtime="kfchain-predictor")
    await roll_out(kfchain, "v1", controller(kmock, "pvc://model-pvc/iris/v1", "iris-predictor-00001"))
    stock = backend_for(kmock)
    await roll_out(stock, "v2", controller(kmock, "pvc://model-pvc/iris/v2", "iris-predictor-00002"))
    assert model_env(kmock) is None
    assert "runtime" not in isvc(kmock)["spec"]["predictor"]["model"]


async def test_rolling_out_the_serving_version_again_is_a_no_op(kmock: kmock.KubernetesEmulator) -> None:
    backend = backend_for(kmock)
    await roll_out(backend, "v1", controller(kmock, "pvc://model-pvc/iris/v1", "iris-predictor-00001"))
    writes = (kmock.action.CREATE, kmock.action.UPDATE)
    writes_before = sum(1 for request in kmock if request.action in writes)
    again = await roll_out(backend, "v1")
    assert again.unchanged and again.traffic_percent == 100
    assert sum(1 for request in kmock if request.action in writes) == writes_before


def test_settings_come_from_the_environment_and_bad_values_are_named() -> None:
    env = {
        "KFCHAIN_ROLLOUT_BACKEND": "kserve",
        "KFCHAIN_NAMESPACE": "ml",
        "KFCHAIN_MAX_REPLICAS": "8",
        "KFCHAIN_SCALE_METRIC": "rps",
        "KFCHAIN_SCALE_TARGET": "50",
        "KFCHAIN_CANARY_PERCENT": "25",
    }
    parsed = KServeRolloutSettings.from_env(env)
    assert (
        parsed.namespace,
        parsed.max_replicas,
        parsed.scale_metric,
        parsed.scale_target,
        parsed.canary_percent,
    ) == ("ml", 8, "rps", 50, 25)
    with pytest.raises(ValueError, match="KFCHAIN_SCALE_METRIC='gpu'"):
        KServeRolloutSettings.from_env({"KFCHAIN_SCALE_METRIC": "gpu"})
    with pytest.raises(ValueError, match="KFCHAIN_MAX_REPLICAS='lots'"):
        KServeRolloutSettings.from_env({"KFCHAIN_MAX_REPLICAS": "lots"})
