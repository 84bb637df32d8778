"""Cluster rollout in KServe's RawDeployment mode (``Standard`` since KServe 0.16): no Knative revisions.

The test plays KServe's controller the way ``PropagateRawStatus`` (kserve
``pkg/apis/serving/v1beta1/inference_service_status.go``) writes the status of a RawDeployment
InferenceService: ``PredictorReady`` comes from the predictor Deployment's conditions (Progressing
``ReplicaSetUpdated`` -> Unknown, ``NewReplicaSetAvailable`` -> True, ``ProgressDeadlineExceeded`` or a
ReplicaFailure -> False), ``Ready`` is ``PredictorReady`` and ``IngressReady`` together,
``components.predictor`` has a URL but no revisions, ``deploymentMode`` names the mode, and
``observedGeneration`` is copied from the *Deployment's* ``status.observedGeneration`` (kserve#6081),
which need not follow the InferenceService's ``metadata.generation``. The tests also run with
``observedGeneration`` counting the InferenceService's own generations, the way the readiness gap
is usually pictured (a Ready status whose observedGeneration is below metadata.generation).

kmock stores objects as given and never sets ``metadata.generation``; :class:`ApiServerEmulator`
adds what the API server does for a CRD with a status subresource: generation 1 on create, one
more on every change of ``spec`` (metadata and status changes leave it alone).
"""

from __future__ import annotations

import asyncio
from typing import Any

import kmock
import pytest

from services.rollout.base import RolloutFailed
from services.rollout.kserve import MODEL_NAME_ENV, MODEL_VERSION_ENV, VERSION_ANNOTATION, KServeRollout
from tests.services.test_rollout_kserve import NAMESPACE, RESOURCE, backend_for, isvc, model_env

KEY = (RESOURCE, NAMESPACE, "iris")
RESOURCE_PATH = ("serving.kserve.io", "v1beta1")


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the API server's ``metadata.generation`` bookkeeping."""

    async def _serve_create(self, request: Any) -> Any:
        metadata = request.data.get("metadata", {})
        obj = self.objects[
            request.resource, request.namespace or metadata.get("namespace"), metadata.get("name")
        ]
        obj["metadata"] = {**obj.raw["metadata"], "generation": 1}
        return await super()._serve_create(request)

    async def _serve_update(self, request: Any) -> Any:
        obj = self.objects[request.resource, request.namespace, request.name]
        *earlier, _ = list(obj.history)
        before = next((version for version in reversed(earlier) if version is not None), None)
        if before is not None and before.raw.get("spec") != obj.raw.get("spec"):
            metadata = obj.raw["metadata"]
            obj["metadata"] = {**metadata, "generation": metadata.get("generation", 1) + 1}
        return await super()._serve_update(request)


pytestmark = pytest.mark.kmock(cls=ApiServerEmulator)


class RawKServe:
    """KServe's controller for one RawDeployment InferenceService, with its predictor Deployment.

    ``counter`` is what ``status.observedGeneration`` copies: ``"deployment"`` (what KServe 0.21 does)
    or ``"isvc"`` (the InferenceService's own generation, written once KServe has observed it).
    """

    def __init__(self, emulator: kmock.KubernetesEmulator, counter: str, mode: str = "RawDeployment"):
        self.emulator, self.counter, self.mode = emulator, counter, mode
        self.deployment_generation = 0  # the Deployment's metadata.generation (and observed, once settled)
        self.observed = 0  # what status.observedGeneration says

    async def wait_for_spec(self, storage_uri: str) -> None:
        for _ in range(500):
            stored = KEY in self.emulator.objects and not self.emulator.objects[KEY].deleted
            if stored and isvc(self.emulator)["spec"]["predictor"]["model"].get("storageUri") == storage_uri:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the backend never asked for {storage_uri}")

    def write(self, predictor: str, reason: str = "", message: str = "", **extra: Any) -> None:
        """Write the status KServe propagates from the Deployment: PredictorReady, IngressReady, Ready."""
        condition = {"status": predictor} | ({"reason": reason} if reason else {})
        condition |= {"message": message} if message else {}
        ready = predictor == "True"
        status = {
            "deploymentMode": self.mode,
            "observedGeneration": self.observed,
            "url": "http://iris-kfchain-test.example.com",
            "address": {"url": "http://iris-predictor.kfchain-test.svc.cluster.local"},
            "components": {
                "predictor": {"url": "http://iris-predictor-kfchain-test.example.com"} if ready else {}
            },
            "conditions": [
                {"type": "IngressReady", "status": "True"},
                {"type": "PredictorReady", **condition},
                {"type": "Ready", **condition},
            ],
            "modelStatus": {"transitionStatus": "UpToDate" if ready else "InProgress"},
        } | extra
        self.emulator.objects[KEY].patch({"status": status})

    def observe(self) -> None:
        """The Deployment controller has seen the Deployment's latest spec."""
        self.observed = (
            self.deployment_generation
            if self.counter == "deployment"
            else isvc(self.emulator)["metadata"]["generation"]
        )

    async def roll_out(self, storage_uri: str, outcome: str = "ready", stale_s: float = 0.15) -> None:
        """Play one rollout of ``storage_uri``: a stale Ready first, then progress and ``outcome``."""
        await self.wait_for_spec(storage_uri)
        first = self.deployment_generation == 0
        self.deployment_generation += 1  # KServe wrote the new pod template into the Deployment
        if not first:
            # KServe propagates the Deployment it just updated: its status still describes the old
            # ReplicaSet (Progressing NewReplicaSetAvailable) and the old observedGeneration.
            self.write("True", "NewReplicaSetAvailable")
            await asyncio.sleep(stale_s)
            if outcome == "stale":
                return
        self.observe()
        self.write("Unknown", "ReplicaSetUpdated", 'ReplicaSet "iris-predictor-7d9f" is progressing.')
        await asyncio.sleep(0.05)
        if outcome == "ready":
            self.write("True", "NewReplicaSetAvailable")
        elif outcome == "ProgressDeadlineExceeded":
            self.write("False", outcome, 'ReplicaSet "iris-predictor-7d9f" has timed out progressing.')
        elif outcome == "FailedCreate":
            self.write(
                "False", outcome, 'pods "iris-predictor-7d9f-x2" is forbidden: exceeded quota: compute'
            )
        elif outcome == "crashloop":  # the new pod's kserve-container keeps failing to load the model
            self.write(
                "Unknown",
                "ReplicaSetUpdated",
                modelStatus={
                    "transitionStatus": "BlockedByFailedLoad",
                    "lastFailureInfo": {
                        "reason": "ModelLoadFailed",
                        "message": "unsupported pickle protocol: 7",
                    },
                },
            )
        # "stuck": the new ReplicaSet never becomes available within the backend's timeout

    def change_replicas_by_hand(self) -> None:
        """An operator edits maxReplicas: a new InferenceService generation, the HPA changes, not the Deployment."""
        obj = self.emulator.objects[KEY]
        obj.patch({"spec": {"predictor": {"maxReplicas": 5}}})
        obj["metadata"] = {**obj.raw["metadata"], "generation": obj.raw["metadata"]["generation"] + 1}


async def roll_out(backend: KServeRollout, version: str, *controllers: Any) -> Any:
    result, *_ = await asyncio.gather(
        asyncio.to_thread(backend.rollout, "iris", version, f"pvc://model-pvc/iris/{version}"), *controllers
    )
    return result


async def serving_v1(
    emulator: kmock.KubernetesEmulator, counter: str, **overrides: Any
) -> tuple[KServeRollout, RawKServe]:
    backend = backend_for(emulator, **overrides)
    controller = RawKServe(emulator, counter)
    await roll_out(backend, "v1", controller.roll_out("pvc://model-pvc/iris/v1"))
    assert isvc(emulator)["metadata"]["annotations"][VERSION_ANNOTATION] == "v1"
    return backend, controller


async def test_the_emulator_counts_spec_changes_like_the_api_server(kmock: kmock.KubernetesEmulator) -> None:
    backend, _ = await serving_v1(kmock, "deployment")
    assert isvc(kmock)["metadata"]["generation"] == 1, "annotations (the serving version) leave it alone"
    patch = {"spec": {"predictor": {"minReplicas": 2}}}
    await asyncio.to_thread(
        backend.api.patch_namespaced_custom_object,
        *RESOURCE_PATH,
        NAMESPACE,
        "inferenceservices",
        "iris",
        patch,
    )
    assert isvc(kmock)["metadata"]["generation"] == 2


@pytest.mark.parametrize("mode", ["RawDeployment", "Standard"])
@pytest.mark.parametrize("counter", ["deployment", "isvc"])
async def test_a_raw_rollout_waits_for_the_new_generation_then_marks_the_version_serving(
    kmock: kmock.KubernetesEmulator, counter: str, mode: str
) -> None:
    backend, controller = await serving_v1(kmock, counter)
    controller.mode = mode
    # The InferenceService's generation runs ahead of the Deployment's: what KServe copies into
    # observedGeneration (the Deployment's counter) can stay below metadata.generation for good.
    controller.change_replicas_by_hand()

    rollout = asyncio.create_task(
        roll_out(backend, "v2", controller.roll_out("pvc://model-pvc/iris/v2", stale_s=0.3))
    )
    await asyncio.sleep(0.2)  # the status still says Ready for the old generation
    assert not rollout.done(), "a Ready status for the old generation must not count"
    assert isvc(kmock)["metadata"]["annotations"][VERSION_ANNOTATION] == "v1"

    outcome = await rollout
    assert outcome.previous_version == "v1" and outcome.traffic_percent == 100
    assert outcome.endpoint == "http://iris-kfchain-test.example.com/v1/models/iris:predict"
    assert await asyncio.to_thread(backend.current_version, "iris") == "v2"
    assert isvc(kmock)["spec"]["predictor"]["model"]["storageUri"] == "pvc://model-pvc/iris/v2"


@pytest.mark.parametrize("counter", ["deployment", "isvc"])
async def test_readiness_that_only_holds_for_the_old_generation_times_out_and_rolls_back(
    kmock: kmock.KubernetesEmulator, counter: str
) -> None:
    backend, controller = await serving_v1(kmock, counter, ready_timeout_s=0.5)
    with pytest.raises(RolloutFailed) as failed:
        await roll_out(backend, "v2", controller.roll_out("pvc://model-pvc/iris/v2", "stale"))
    assert failed.value.serving_version == "v1"
    assert "not Ready within" in failed.value.reason and "rolled back to v1" in failed.value.reason
    assert isvc(kmock)["spec"]["predictor"]["model"]["storageUri"] == "pvc://model-pvc/iris/v1"
    assert await asyncio.to_thread(backend.current_version, "iris") == "v1"


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("ProgressDeadlineExceeded", "PredictorReady is False: ProgressDeadlineExceeded"),
        ("FailedCreate", "PredictorReady is False: FailedCreate"),
        ("crashloop", "model failed to load (ModelLoadFailed: unsupported pickle protocol: 7)"),
    ],
)
async def test_a_failed_raw_rollout_rolls_back_storage_and_env_and_names_the_serving_version(
    kmock: kmock.KubernetesEmulator, outcome: str, reason: str
) -> None:
    # A long timeout: the failure, not the clock, must end the rollout.
    backend, controller = await serving_v1(
        kmock, "deployment", runtime="kfchain-predictor", ready_timeout_s=30
    )
    with pytest.raises(RolloutFailed) as failed:
        await roll_out(backend, "v2", controller.roll_out("pvc://model-pvc/iris/v2", outcome))
    assert failed.value.serving_version == "v1"
    assert reason in failed.value.reason and "rolled back to v1" in failed.value.reason
    assert isvc(kmock)["spec"]["predictor"]["model"]["storageUri"] == "pvc://model-pvc/iris/v1"
    assert model_env(kmock) == {MODEL_NAME_ENV: "iris", MODEL_VERSION_ENV: "v1"}, "rolled back with v1's env"
    assert await asyncio.to_thread(backend.current_version, "iris") == "v1"


async def test_a_raw_rollout_that_never_becomes_ready_times_out_and_rolls_back(
    kmock: kmock.KubernetesEmulator,
) -> None:
    backend, controller = await serving_v1(kmock, "deployment", ready_timeout_s=0.5)
    with pytest.raises(RolloutFailed) as failed:
        await roll_out(backend, "v2", controller.roll_out("pvc://model-pvc/iris/v2", "stuck"))
    assert failed.value.serving_version == "v1"
    assert "not Ready within 0.5 s" in failed.value.reason
    assert "PredictorReady=Unknown (ReplicaSetUpdated)" in failed.value.reason, "the last status is named"
    assert isvc(kmock)["spec"]["predictor"]["model"]["storageUri"] == "pvc://model-pvc/iris/v1"
    assert await asyncio.to_thread(backend.current_version, "iris") == "v1"


async def test_a_stale_failure_from_before_the_patch_does_not_fail_the_new_rollout(
    kmock: kmock.KubernetesEmulator,
) -> None:
    """v1 stopped progressing (a node ran out of quota); v2 must be judged on its own status."""
    backend, controller = await serving_v1(kmock, "deployment")
    controller.write("False", "ProgressDeadlineExceeded", "ReplicaSet has timed out progressing.")

    async def recover() -> None:
        await controller.wait_for_spec("pvc://model-pvc/iris/v2")
        controller.deployment_generation += 1
        await asyncio.sleep(0.1)  # KServe has not propagated the Deployment yet: still the old failure
        controller.observe()
        controller.write("True", "NewReplicaSetAvailable")

    outcome = await roll_out(backend, "v2", recover())
    assert outcome.previous_version == "v1"
    assert await asyncio.to_thread(backend.current_version, "iris") == "v2"


async def test_rolling_out_the_serving_version_again_waits_for_ready_without_a_new_generation(
    kmock: kmock.KubernetesEmulator,
) -> None:
    """v1 lost its pods (Ready Unknown); rolling v1 out again changes no spec: Ready again is enough."""
    backend, controller = await serving_v1(kmock, "deployment")
    controller.write("Unknown", "ReplicaSetUpdated")

    async def recover() -> None:
        await asyncio.sleep(0.1)
        controller.write("True", "NewReplicaSetAvailable")  # same observedGeneration: nothing new to observe

    outcome = await roll_out(backend, "v1", recover())
    assert not outcome.unchanged and outcome.previous_version == "v1"
    assert isvc(kmock)["metadata"]["generation"] == 1
    assert await asyncio.to_thread(backend.current_version, "iris") == "v1"
