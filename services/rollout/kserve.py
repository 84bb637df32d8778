"""Cluster rollout: create or patch a KServe ``InferenceService``, with an optional canary.

The InferenceService is built with the kserve SDK's models (``V1beta1InferenceService``) from
:class:`KServeRolloutSettings` — ``modelFormat: sklearn``, ``storageUri: pvc://<pvc>/<model>/<version>``,
``minReplicas``/``maxReplicas``, ``scaleMetric``/``scaleTarget`` (KPA concurrency by default),
resources, an optional ``runtime`` (kfchain's fast ServingRuntime) — and sent through the Kubernetes
client's ``CustomObjectsApi`` (created if missing, merge-patched if present).

With a ``runtime`` (``kfchain-predictor``), the model spec also carries ``env``: ``KFCHAIN_MODEL_VERSION``
(the version, so every answer of that revision names it: the predictor only sees ``/mnt/models``) and
``KFCHAIN_MODEL_NAME`` (the InferenceService name, which KServe routes ``/v1/models/<name>`` by). The
env is part of the revision's template, so during a canary each revision reports its own version.

Readiness is judged from the status KServe writes, which depends on its deployment mode (the
``status.deploymentMode`` KServe records, else the ``serving.kserve.io/deploymentMode`` annotation):

- Serverless (``Knative`` since KServe 0.16): each change makes a Knative revision. The rollout is
  Ready when the ``Ready`` condition is True and the predictor's ``latestReadyRevision`` is a new
  revision (different from the one before the patch) equal to ``latestCreatedRevision``. KServe has
  acted on the change once ``latestCreatedRevision`` moved (or ``observedGeneration`` moved and
  reached ``metadata.generation``).
- RawDeployment (``Standard`` since KServe 0.16): a plain Deployment, no revisions in
  ``status.components.predictor``. ``PredictorReady`` mirrors the Deployment (Progressing
  ``ReplicaSetUpdated`` -> Unknown, ``NewReplicaSetAvailable`` -> True, ``ProgressDeadlineExceeded``
  or a ReplicaFailure such as ``FailedCreate`` -> False) and ``Ready`` is ``PredictorReady`` and
  ``IngressReady`` together. ``status.observedGeneration`` is the *Deployment's* observed generation
  (kserve#6081), not this object's ``metadata.generation``, so it is never compared with it: KServe
  has acted once it differs from its value before the patch (the Deployment controller has seen the
  new pod template), and the rollout is Ready when ``Ready`` is True from then on. The Ready status
  KServe writes right after the patch, still about the old ReplicaSet, does not count. A patch that
  changed no spec (same ``metadata.generation``) leaves KServe nothing to do: ``Ready`` decides.
  Limits: an HPA scale between the patch and KServe's update of the Deployment also moves the
  counter; and if KServe starts writing its own generation there (kserve#6096, open), its first
  status after a patch would pass for the new ReplicaSet: then read the Deployment itself.

Either way the rollout failed when, once KServe has acted on the change, a condition turns False
with a failure reason (``...Fail...``, ``ExitCode``, ``ContainerMissing``; in RawDeployment also
``ProgressDeadlineExceeded``) or ``modelStatus`` reports a failed load; a failure KServe reported
before the patch does not count. With a canary the new revision first gets ``canaryTrafficPercent``;
Ready -> the percentage is removed (promote: 100 % to the new revision). Not Ready in time or failed
-> roll back (``canaryTrafficPercent: 0``, the previous ``storageUri`` and its ``env``) and raise
:class:`RolloutFailed` naming the version still serving. The serving version is kept in the
annotation ``serving.kfchain.io/model-version`` (and the one before it in ``.../previous-version``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from kserve import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1ModelFormat,
    V1beta1ModelSpec,
    V1beta1PredictorSpec,
)
from kubernetes import client as k8s

from services.rollout.base import RolloutFailed, RolloutOutcome

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
VERSION_ANNOTATION = "serving.kfchain.io/model-version"
PREVIOUS_ANNOTATION = "serving.kfchain.io/previous-version"
ROLLOUT_ANNOTATION = "serving.kfchain.io/rolling-out"
MODEL_LABEL = "serving.kfchain.io/model"
# What a model-dir predictor (services.predictor.settings) reads to name the model and version it serves.
MODEL_NAME_ENV, MODEL_VERSION_ENV = "KFCHAIN_MODEL_NAME", "KFCHAIN_MODEL_VERSION"
# storageUri schemes KServe's storage initializer understands; anything else becomes pvc://.
_STORAGE_SCHEMES = {"pvc", "s3", "gs", "hdfs", "webhdfs", "https", "http", "oci", "hf", "azure"}
_FAILED_LOAD = {"BlockedByFailedLoad", "InvalidSpec"}
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# KServe's names for its plain-Deployment mode: "RawDeployment" until 0.15, "Standard" since.
_RAW_MODES = {"RawDeployment", "Standard"}
# A Deployment that gives up (progressDeadlineSeconds) reports this; KServe copies it to PredictorReady.
_RAW_FAILURE_REASONS = {"ProgressDeadlineExceeded"}
_SCALE_METRICS = ("concurrency", "rps", "cpu", "memory")


@dataclass(frozen=True)
class KServeRolloutSettings:
    """How the InferenceService is shaped and how long a rollout may take."""

    namespace: str = "kfchain"
    isvc_name: str = ""  # "" -> the model name (KServe's sklearn server serves the ISVC name)
    pvc_name: str = "model-pvc"
    runtime: str = (
        ""  # e.g. "kfchain-predictor" for kfchain's fast ServingRuntime; "" -> KServe picks sklearn's
    )
    min_replicas: int = 1
    max_replicas: int = 3
    scale_metric: str = "concurrency"
    scale_target: int = 10
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "512Mi"
    canary_percent: int = 0  # 0 -> no canary: the new revision takes all traffic once Ready
    ready_timeout_s: float = 300.0
    poll_interval_s: float = 2.0
    service_account: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KServeRolloutSettings:
        """Read ``KFCHAIN_NAMESPACE``, ``KFCHAIN_ISVC_NAME``, ``KFCHAIN_MODEL_PVC``, ``KFCHAIN_SERVING_RUNTIME``,
        ``KFCHAIN_MIN_REPLICAS``, ``KFCHAIN_MAX_REPLICAS``, ``KFCHAIN_SCALE_METRIC``, ``KFCHAIN_SCALE_TARGET``,
        ``KFCHAIN_PREDICTOR_CPU`` / ``_MEMORY`` (requests), ``KFCHAIN_PREDICTOR_CPU_LIMIT`` / ``_MEMORY_LIMIT``,
        ``KFCHAIN_CANARY_PERCENT``, ``KFCHAIN_ROLLOUT_TIMEOUT``, ``KFCHAIN_SERVICE_ACCOUNT``."""
        env = os.environ if env is None else env
        d = cls()

        def number(name: str, default: float, cast: Callable[[str], Any] = int) -> Any:
            raw = env.get(name)
            if not raw:
                return default
            try:
                return cast(raw)
            except ValueError:
                raise ValueError(
                    f"{name}={raw!r} is not a number; unset it or give e.g. {name}={default}"
                ) from None

        settings = cls(
            namespace=env.get("KFCHAIN_NAMESPACE") or d.namespace,
            isvc_name=env.get("KFCHAIN_ISVC_NAME") or "",
            pvc_name=env.get("KFCHAIN_MODEL_PVC") or d.pvc_name,
            runtime=env.get("KFCHAIN_SERVING_RUNTIME") or "",
            min_replicas=number("KFCHAIN_MIN_REPLICAS", d.min_replicas),
            max_replicas=number("KFCHAIN_MAX_REPLICAS", d.max_replicas),
            scale_metric=env.get("KFCHAIN_SCALE_METRIC") or d.scale_metric,
            scale_target=number("KFCHAIN_SCALE_TARGET", d.scale_target),
            cpu_request=env.get("KFCHAIN_PREDICTOR_CPU") or d.cpu_request,
            memory_request=env.get("KFCHAIN_PREDICTOR_MEMORY") or d.memory_request,
            cpu_limit=env.get("KFCHAIN_PREDICTOR_CPU_LIMIT") or d.cpu_limit,
            memory_limit=env.get("KFCHAIN_PREDICTOR_MEMORY_LIMIT") or d.memory_limit,
            canary_percent=number("KFCHAIN_CANARY_PERCENT", d.canary_percent),
            ready_timeout_s=number("KFCHAIN_ROLLOUT_TIMEOUT", d.ready_timeout_s, float),
            service_account=env.get("KFCHAIN_SERVICE_ACCOUNT") or "",
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        if self.scale_metric not in _SCALE_METRICS:
            raise ValueError(
                f"KFCHAIN_SCALE_METRIC={self.scale_metric!r} must be one of {', '.join(_SCALE_METRICS)}"
            )
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                f"replicas min={self.min_replicas} max={self.max_replicas}: need 0 <= min <= max and max >= 1"
            )
        if not 0 <= self.canary_percent < 100:
            raise ValueError(f"KFCHAIN_CANARY_PERCENT={self.canary_percent} must be 0 (off) to 99")
        if self.scale_target < 1:
            raise ValueError(f"KFCHAIN_SCALE_TARGET={self.scale_target} must be at least 1")


def storage_uri_for(
    settings: KServeRolloutSettings, model_name: str, model_version: str, serving_uri: str
) -> str:
    """``serving_uri`` if KServe can fetch it, else ``pvc://<pvc>/<model>/<version>``."""
    if serving_uri and urlparse(serving_uri).scheme in _STORAGE_SCHEMES:
        return serving_uri
    return f"pvc://{settings.pvc_name}/{model_name}/{model_version}"


def build_inference_service(
    settings: KServeRolloutSettings,
    model_name: str,
    model_version: str,
    storage_uri: str,
    canary_percent: int | None = None,
) -> V1beta1InferenceService:
    """The InferenceService serving ``model_version`` as kserve SDK objects."""
    name = settings.isvc_name or model_name
    model = V1beta1ModelSpec(
        model_format=V1beta1ModelFormat(name="sklearn"),
        storage_uri=storage_uri,
        runtime=settings.runtime or None,
        # KServe's stock runtime takes its name from {{.Name}} and reports no version; a named
        # runtime (kfchain's predictor) is told both. Unset for the stock runtime: nothing reads it.
        env=[
            k8s.V1EnvVar(name=MODEL_NAME_ENV, value=name),
            k8s.V1EnvVar(name=MODEL_VERSION_ENV, value=model_version),
        ]
        if settings.runtime
        else None,
        resources=k8s.V1ResourceRequirements(
            requests={"cpu": settings.cpu_request, "memory": settings.memory_request},
            limits={"cpu": settings.cpu_limit, "memory": settings.memory_limit},
        ),
    )
    model.name = None  # the SDK defaults the container name to "", which KServe would then use
    predictor = V1beta1PredictorSpec(
        model=model,
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        scale_metric=settings.scale_metric,
        scale_target=settings.scale_target,
        canary_traffic_percent=canary_percent,
        service_account_name=settings.service_account or None,
    )
    return V1beta1InferenceService(
        api_version=f"{GROUP}/{VERSION}",
        kind="InferenceService",
        metadata=k8s.V1ObjectMeta(
            name=name,
            namespace=settings.namespace,
            labels={MODEL_LABEL: model_name},
            annotations={
                # Serverless mode: Knative's autoscaler class (KPA for concurrency/rps, its HPA class
                # for cpu/memory). serving.kserve.io/autoscalerClass is for RawDeployment only.
                "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev"
                if settings.scale_metric in ("concurrency", "rps")
                else "hpa.autoscaling.knative.dev",
                ROLLOUT_ANNOTATION: model_version,
            },
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def to_manifest(isvc: V1beta1InferenceService) -> dict[str, Any]:
    """The InferenceService as the JSON dict the Kubernetes API takes (camelCase, no nulls)."""
    return k8s.ApiClient().sanitize_for_serialization(isvc)


class KServeRollout:
    """:class:`services.rollout.base.RolloutBackend` for a cluster with KServe (Serverless or RawDeployment)."""

    def __init__(
        self,
        settings: KServeRolloutSettings,
        api: k8s.CustomObjectsApi | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        settings.check()
        self.settings = settings
        self.api = api or _default_api()
        self.sleep = sleep

    # -- RolloutBackend ---------------------------------------------------------------------------
    def current_version(self, model_name: str) -> str | None:
        existing = self._get(self._name(model_name))
        return _annotations(existing).get(VERSION_ANNOTATION) if existing else None

    def rollout(self, model_name: str, model_version: str, serving_uri: str) -> RolloutOutcome:
        """Create or patch the InferenceService, wait for Ready (canary first if configured), promote."""
        name = self._name(model_name)
        storage_uri = storage_uri_for(self.settings, model_name, model_version, serving_uri)
        existing = self._get(name)
        if existing is None:
            return self._create(model_name, model_version, storage_uri)
        serving = _annotations(existing).get(VERSION_ANNOTATION)
        previous_storage = _model(existing).get("storageUri")
        if serving == model_version and previous_storage == storage_uri and _ready(existing):
            return RolloutOutcome(
                self._endpoint(existing, model_name),
                100,
                _annotations(existing).get(PREVIOUS_ANNOTATION),
                unchanged=True,
            )
        return self._update(model_name, model_version, storage_uri, existing, serving)

    # -- steps ----------------------------------------------------------------------------------
    def _create(self, model_name: str, model_version: str, storage_uri: str) -> RolloutOutcome:
        manifest = to_manifest(build_inference_service(self.settings, model_name, model_version, storage_uri))
        try:
            self.api.create_namespaced_custom_object(
                GROUP, VERSION, self.settings.namespace, PLURAL, manifest
            )
        except k8s.ApiException as error:
            raise RolloutFailed(
                f"creating InferenceService {manifest['metadata']['name']}: {_api_reason(error)}", None
            ) from None
        status = self._wait_ready(model_name, baseline=None)
        if isinstance(status, str):
            raise RolloutFailed(
                f"InferenceService {self._name(model_name)} for {model_version}: {status}", None
            )
        self._mark_serving(model_name, model_version, previous=None)
        return RolloutOutcome(self._endpoint(status, model_name), 100, None)

    def _update(
        self,
        model_name: str,
        model_version: str,
        storage_uri: str,
        existing: dict,
        serving: str | None,
    ) -> RolloutOutcome:
        canary = (
            self.settings.canary_percent if serving is not None and self.settings.canary_percent else None
        )
        manifest = to_manifest(
            build_inference_service(self.settings, model_name, model_version, storage_uri, canary)
        )
        patch = {
            "metadata": {
                "annotations": manifest["metadata"]["annotations"],
                "labels": manifest["metadata"]["labels"],
            },
            "spec": {"predictor": manifest["spec"]["predictor"]},
        }
        patch["spec"]["predictor"].setdefault("canaryTrafficPercent", None)  # merge patch: None removes it
        for key in ("runtime", "env"):  # back to the stock runtime: drop kfchain's runtime and its env
            patch["spec"]["predictor"]["model"].setdefault(key, None)
        self._patch(model_name, patch, serving)
        status = self._wait_ready(model_name, baseline=existing)
        if isinstance(status, str):
            self._roll_back(model_name, _model(existing), canary is not None)
            raise RolloutFailed(
                f"{model_version} not rolled out: {status}; rolled back to {serving or 'nothing'}", serving
            )
        if canary is not None:
            self._patch(
                model_name, {"spec": {"predictor": {"canaryTrafficPercent": None}}}, serving
            )  # promote
        self._mark_serving(model_name, model_version, previous=serving)
        return RolloutOutcome(self._endpoint(status, model_name), 100, serving)

    def _roll_back(self, model_name: str, previous_model: dict, canary: bool) -> None:
        predictor: dict[str, Any] = {"canaryTrafficPercent": 0 if canary else None}
        if previous_model.get("storageUri"):
            # The env too: it names the version a kfchain predictor reports (None removes it).
            predictor["model"] = {
                "storageUri": previous_model["storageUri"],
                "env": previous_model.get("env"),
            }
        self._patch(
            model_name,
            {"metadata": {"annotations": {ROLLOUT_ANNOTATION: None}}, "spec": {"predictor": predictor}},
            None,
            quiet=True,
        )

    def _mark_serving(self, model_name: str, model_version: str, previous: str | None) -> None:
        annotations = {
            VERSION_ANNOTATION: model_version,
            PREVIOUS_ANNOTATION: previous,
            ROLLOUT_ANNOTATION: None,
        }
        self._patch(model_name, {"metadata": {"annotations": annotations}}, previous)

    def _wait_ready(self, model_name: str, baseline: dict | None) -> dict | str:
        """The Ready object, or a string saying why it is not Ready (failed or timed out)."""
        deadline = time.monotonic() + self.settings.ready_timeout_s
        last_seen = "no status yet"
        while True:
            current = self._get(self._name(model_name))
            if current is None:
                return "the InferenceService disappeared while rolling out"
            raw = _raw_deployment(current) or (baseline is not None and _raw_deployment(baseline))
            acted, rolled_out = (_raw_progress if raw else _serverless_progress)(current, baseline)
            if acted:
                failure = _failure(current, raw)
                if failure:
                    return failure
                if rolled_out:
                    return current
                last_seen = _condition_summary(current)
            elif _conditions(current):
                last_seen = f"{_condition_summary(current)}, not yet for this change"
            if time.monotonic() >= deadline:
                return f"not Ready within {self.settings.ready_timeout_s:g} s (last status: {last_seen})"
            self.sleep(self.settings.poll_interval_s)

    # -- API plumbing -----------------------------------------------------------------------------
    def _name(self, model_name: str) -> str:
        return self.settings.isvc_name or model_name

    def _get(self, name: str) -> dict | None:
        try:
            return self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.settings.namespace, PLURAL, name
            )
        except k8s.ApiException as error:
            if error.status == 404:
                return None
            raise RolloutFailed(f"reading InferenceService {name}: {_api_reason(error)}", None) from None

    def _patch(self, model_name: str, body: dict, serving: str | None, quiet: bool = False) -> None:
        name = self._name(model_name)
        try:
            self.api.patch_namespaced_custom_object(
                GROUP, VERSION, self.settings.namespace, PLURAL, name, body
            )
        except k8s.ApiException as error:
            if not quiet:
                raise RolloutFailed(
                    f"patching InferenceService {name}: {_api_reason(error)}", serving
                ) from None

    def _endpoint(self, isvc: dict, model_name: str) -> str:
        status = isvc.get("status") or {}
        base = status.get("url") or (status.get("address") or {}).get("url")
        if not base:
            base = f"http://{self._name(model_name)}.{self.settings.namespace}.svc.cluster.local"
        return f"{base.rstrip('/')}/v1/models/{self._name(model_name)}:predict"


def _default_api() -> k8s.CustomObjectsApi:
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return k8s.CustomObjectsApi()


def _annotations(obj: dict | None) -> dict[str, str]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _model(obj: dict) -> dict:
    return (((obj.get("spec") or {}).get("predictor") or {}).get("model")) or {}


def _revisions(obj: dict) -> tuple[str | None, str | None]:
    predictor = (((obj.get("status") or {}).get("components")) or {}).get("predictor") or {}
    return predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")


def _conditions(obj: dict) -> list[dict]:
    return (obj.get("status") or {}).get("conditions") or []


def _ready(obj: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in _conditions(obj))


def _generation_observed(obj: dict, baseline: dict) -> bool:
    observed = (obj.get("status") or {}).get("observedGeneration")
    generation = (obj.get("metadata") or {}).get("generation")
    old = (baseline.get("status") or {}).get("observedGeneration")
    return observed is not None and generation is not None and observed >= generation and observed != old


def _raw_deployment(obj: dict) -> bool:
    """Whether KServe runs ``obj`` as a plain Deployment: the mode it recorded, else the annotation."""
    mode = (obj.get("status") or {}).get("deploymentMode") or _annotations(obj).get(
        DEPLOYMENT_MODE_ANNOTATION
    )
    return mode in _RAW_MODES


def _serverless_progress(current: dict, baseline: dict | None) -> tuple[bool, bool]:
    """(KServe has acted on the change, the change is rolled out), judged by Knative revisions."""
    before = _revisions(baseline) if baseline else (None, None)
    created, ready_revision = _revisions(current)
    acted = baseline is None or created != before[0] or _generation_observed(current, baseline)
    rolled_out = _ready(current) and (
        (created is None and ready_revision is None)
        or (ready_revision is not None and ready_revision == created and ready_revision != before[1])
    )
    return acted, rolled_out


def _raw_progress(current: dict, baseline: dict | None) -> tuple[bool, bool]:
    """(KServe has acted on the change, the change is rolled out) in RawDeployment mode.

    There are no revisions. ``status.observedGeneration`` is copied from the predictor Deployment's
    ``status.observedGeneration`` (kserve#6081), not from this object's ``metadata.generation``, so
    it is only compared with its value before the patch: it moves once the Deployment controller
    has seen the new pod template, and the conditions written with it describe the new ReplicaSet.
    Right after the patch KServe still propagates the old ReplicaSet's status (Ready True, old
    observedGeneration): that does not count. A patch that changed no spec (same generation) gives
    the controller nothing to do: the current status is the answer.
    """
    if baseline is None:
        return True, _ready(current)
    generation = (current.get("metadata") or {}).get("generation")
    observed = (current.get("status") or {}).get("observedGeneration")
    acted = (generation is not None and generation == (baseline.get("metadata") or {}).get("generation")) or (
        observed is not None and observed != (baseline.get("status") or {}).get("observedGeneration")
    )
    return acted, _ready(current)


def _failure(obj: dict, raw: bool = False) -> str | None:
    model_status = (obj.get("status") or {}).get("modelStatus") or {}
    if model_status.get("transitionStatus") in _FAILED_LOAD:
        info = model_status.get("lastFailureInfo") or {}
        return f"model failed to load ({info.get('reason', model_status['transitionStatus'])}: {info.get('message', '')})"
    for condition in _conditions(obj):
        reason = condition.get("reason") or ""
        if condition.get("status") == "False" and (
            "Fail" in reason
            or reason in ("ExitCode", "ContainerMissing")
            or (raw and reason in _RAW_FAILURE_REASONS)
        ):
            return f"{condition.get('type')} is False: {reason}: {condition.get('message', '')}".rstrip(": ")
    return None


def _condition_summary(obj: dict) -> str:
    parts = [
        f"{c.get('type')}={c.get('status')}" + (f" ({c['reason']})" if c.get("reason") else "")
        for c in _conditions(obj)
    ]
    return ", ".join(parts) or "no conditions"


def _api_reason(error: k8s.ApiException) -> str:
    return f"{error.status} {error.reason}: {(error.body or '')[:300]}"
