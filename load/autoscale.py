"""The autoscaling check behind ``make test_autoscaling``: load the predictor and watch it scale.

    python -m load.autoscale --cluster     # KUBECONFIG or in-cluster: the hey Job + replica watch
    python -m load.autoscale --local       # the local stack (`make up`): hey + a short Locust run
    python -m load.autoscale               # --cluster when KUBECONFIG/in-cluster config exists, else --local

Cluster: applies the ConfigMaps and the Job of ``load/k8s/`` (hey ``-z 1m -c 500`` by default;
``--duration``/``--concurrency`` or ``KFCHAIN_HEY_DURATION``/``KFCHAIN_HEY_CONCURRENCY``), samples
the predictor's pods (label ``serving.kserve.io/inferenceservice=<model>``) and Deployments every
few seconds, prints one table row per sample, prints hey's summary from the Job's pod log when
the Job ends, writes ``replicas.csv`` + a PNG, and deletes the Job and ConfigMaps, also on Ctrl-C.

Local: checks that the predictor answers correctly, runs hey against the predictor and the
frontend, a short headless Locust run, prints the summaries and the plot's path.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from events.envvars import env_int
from load.hey import HeyError, HeyResult, parse_hey_summary
from load.locustrun import LocustRunError
from load.settings import DEFAULT_OUTPUT_DIR, LoadSettings

MANIFESTS_DIR = Path(__file__).resolve().parent / "k8s"
PREDICTOR_LABEL = "serving.kserve.io/inferenceservice"
REVISION_LABEL = "serving.knative.dev/revision"
JOB_NAME_LABEL = "job-name"  # set by the Job controller on its pods (also batch.kubernetes.io/job-name)
SETTINGS_KEYS = ("HEY_DURATION", "HEY_CONCURRENCY", "HEY_URL")
API_TIMEOUT_S = 15
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")

Out = Callable[[str], None]


def duration_seconds(duration: str) -> float:
    """Seconds in a hey/Go duration such as ``1m``, ``90s`` or ``1m30s``; ValueError naming it otherwise."""
    match = _DURATION.match(duration.strip())
    if not duration.strip() or match is None or not any(match.groups()):
        raise ValueError(f"duration {duration!r} is not like 30s, 1m or 1m30s (hey's -z format)")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


@dataclass(frozen=True)
class ClusterSettings:
    """What the cluster check applies and watches."""

    namespace: str = "kfchain"
    inference_service: str = "iris"
    duration: str = "1m"
    concurrency: int = 500
    target_url: str = ""  # default: the InferenceService's cluster-local V1 predict URL
    interval_s: float = 5.0
    startup_grace_s: float = 600.0  # image pull + scheduling, on top of the hey duration
    manifests_dir: Path = MANIFESTS_DIR
    output_dir: Path = DEFAULT_OUTPUT_DIR

    def __post_init__(self) -> None:
        duration_seconds(self.duration)
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.interval_s <= 0:
            raise ValueError(f"the watch interval must be > 0 s, got {self.interval_s}")

    @property
    def url(self) -> str:
        return self.target_url or (
            f"http://{self.inference_service}.{self.namespace}.svc.cluster.local"
            f"/v1/models/{self.inference_service}:predict"
        )

    @property
    def selector(self) -> dict[str, str]:
        return {PREDICTOR_LABEL: self.inference_service}

    @property
    def timeout_s(self) -> float:
        return duration_seconds(self.duration) + self.startup_grace_s

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClusterSettings:
        """Read ``KFCHAIN_NAMESPACE``, ``KFCHAIN_MODEL_NAME``, ``KFCHAIN_HEY_DURATION``, ``KFCHAIN_HEY_CONCURRENCY``,
        ``KFCHAIN_HEY_URL``, ``KFCHAIN_WATCH_INTERVAL``, ``KFCHAIN_LOAD_OUTPUT``."""
        env = os.environ if env is None else env
        interval = env.get("KFCHAIN_WATCH_INTERVAL") or "5"
        try:
            interval_s = float(interval)
        except ValueError:
            raise ValueError(f"KFCHAIN_WATCH_INTERVAL={interval!r} is not a number of seconds") from None
        return cls(
            namespace=env.get("KFCHAIN_NAMESPACE") or "kfchain",
            inference_service=env.get("KFCHAIN_MODEL_NAME") or "iris",
            duration=env.get("KFCHAIN_HEY_DURATION") or "1m",
            concurrency=env_int(env, "KFCHAIN_HEY_CONCURRENCY", 500, minimum=1),
            target_url=env.get("KFCHAIN_HEY_URL") or "",
            interval_s=interval_s,
            output_dir=Path(env.get("KFCHAIN_LOAD_OUTPUT") or DEFAULT_OUTPUT_DIR).expanduser(),
        )


# -- replicas ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaSample:
    """The predictor's replicas at one moment."""

    time: float  # Unix seconds
    elapsed_s: float
    pods: int  # pods that exist and are not finished or terminating
    ready_pods: int
    desired_replicas: int  # sum of the Deployments' spec.replicas (what the autoscaler asked for)
    revisions: dict[str, str] = field(default_factory=dict)  # revision -> "ready/desired"


def labels_match(labels: Mapping[str, str] | None, selector: Mapping[str, str]) -> bool:
    """True if ``labels`` carry every key=value of ``selector``."""
    labels = labels or {}
    return all(labels.get(key) == value for key, value in selector.items())


def selector_string(selector: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in selector.items())


def _pod_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _pod_alive(pod: Any) -> bool:
    phase = pod.status.phase if pod.status else None
    return pod.metadata.deletion_timestamp is None and phase not in ("Succeeded", "Failed")


class ReplicaWatcher:
    """Counts the predictor's pods and the replicas its Deployments want, through the Kubernetes API."""

    def __init__(self, api_client: Any, namespace: str, selector: Mapping[str, str]) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.selector = dict(selector)

    def sample(self, now: float, start: float) -> ReplicaSample:
        label_selector = selector_string(self.selector)
        # The selector is also checked here: cheap, and right even where the server ignores it.
        pods = [
            pod
            for pod in self.core.list_namespaced_pod(
                self.namespace, label_selector=label_selector, _request_timeout=API_TIMEOUT_S
            ).items
            if labels_match(pod.metadata.labels, self.selector) and _pod_alive(pod)
        ]
        deployments = [
            d
            for d in self.apps.list_namespaced_deployment(
                self.namespace, label_selector=label_selector, _request_timeout=API_TIMEOUT_S
            ).items
            if labels_match(d.metadata.labels, self.selector)
        ]
        ready_by_revision: dict[str, int] = {}
        for pod in pods:
            revision = (pod.metadata.labels or {}).get(REVISION_LABEL, "")
            ready_by_revision[revision] = ready_by_revision.get(revision, 0) + (1 if _pod_ready(pod) else 0)
        revisions: dict[str, str] = {}
        desired = 0
        for deployment in sorted(deployments, key=lambda d: d.metadata.name):
            wanted = (deployment.spec.replicas if deployment.spec else None) or 0
            desired += wanted
            revision = (deployment.metadata.labels or {}).get(REVISION_LABEL, "")
            ready = (
                ready_by_revision.get(revision, 0)
                if revision
                else ((deployment.status.ready_replicas or 0) if deployment.status else 0)
            )
            revisions[revision or deployment.metadata.name] = f"{ready}/{wanted}"
        if not deployments:  # no Deployment visible (e.g. RBAC): pods are the best estimate
            desired = len(pods)
        return ReplicaSample(
            time=now,
            elapsed_s=now - start,
            pods=len(pods),
            ready_pods=sum(1 for pod in pods if _pod_ready(pod)),
            desired_replicas=desired,
            revisions=revisions,
        )


TABLE_HEADER = (
    f"{'time':8}  {'elapsed':>7}  {'desired':>7}  {'ready':>5}  {'pods':>4}  revisions (ready/desired)"
)


def format_sample(sample: ReplicaSample) -> str:
    """One row of the replicas-over-time table."""
    clock = datetime.fromtimestamp(sample.time).strftime("%H:%M:%S")
    revisions = " ".join(f"{name}={value}" for name, value in sample.revisions.items()) or "-"
    return (
        f"{clock:8}  {sample.elapsed_s:>6.0f}s  {sample.desired_replicas:>7}  {sample.ready_pods:>5}  "
        f"{sample.pods:>4}  {revisions}"
    )


def summarize_replicas(samples: list[ReplicaSample]) -> str:
    """``ready pods 1 -> peak 10 at 45 s -> 2 at the end``."""
    if not samples:
        return "no replica samples were taken"
    peak = max(samples, key=lambda s: s.ready_pods)
    return (
        f"ready pods {samples[0].ready_pods} -> peak {peak.ready_pods} at {peak.elapsed_s:.0f} s -> "
        f"{samples[-1].ready_pods} at the end (desired peak {max(s.desired_replicas for s in samples)}, "
        f"{len(samples)} samples)"
    )


def write_replicas_csv(samples: list[ReplicaSample], path: Path) -> Path:
    """Write the samples for ``python -m load.report --replicas``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "elapsed_s", "ready_pods", "pods", "desired_replicas", "revisions"])
        for s in samples:
            revisions = " ".join(f"{name}={value}" for name, value in s.revisions.items())
            writer.writerow(
                [f"{s.time:.3f}", f"{s.elapsed_s:.1f}", s.ready_pods, s.pods, s.desired_replicas, revisions]
            )
    return path


# -- the hey Job ------------------------------------------------------------------------------------


def load_manifests(settings: ClusterSettings) -> list[dict[str, Any]]:
    """The objects of ``load/k8s`` (in kustomization order) set up for ``settings``.

    Each object gets the namespace; the ConfigMap holding ``HEY_DURATION``/``HEY_CONCURRENCY``/``HEY_URL``
    gets the configured values.
    """
    directory = settings.manifests_dir
    kustomization = directory / "kustomization.yaml"
    if kustomization.is_file():
        names = (yaml.safe_load(kustomization.read_text()) or {}).get("resources") or []
    else:
        names = sorted(p.name for p in directory.glob("*.yaml"))
    objects: list[dict[str, Any]] = []
    for name in names:
        for obj in yaml.safe_load_all((directory / name).read_text()):
            if obj:
                obj.setdefault("metadata", {})["namespace"] = settings.namespace
                objects.append(obj)
    hey_settings = [
        o for o in objects if o.get("kind") == "ConfigMap" and "HEY_DURATION" in (o.get("data") or {})
    ]
    if not hey_settings:
        raise ValueError(
            f"no ConfigMap with {', '.join(SETTINGS_KEYS)} in {directory}; the Job reads hey's arguments from it"
        )
    hey_settings[0]["data"].update(
        {
            "HEY_DURATION": settings.duration,
            "HEY_CONCURRENCY": str(settings.concurrency),
            "HEY_URL": settings.url,
        }
    )
    if not any(o.get("kind") == "Job" for o in objects):
        raise ValueError(f"no Job in {directory}; expected the hey Job (job-hey.yaml)")
    return objects


class HeyJob:
    """The hey Job and its ConfigMaps on the cluster: apply, poll, read the log, delete."""

    def __init__(self, api_client: Any, settings: ClusterSettings, manifests: list[dict[str, Any]]) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.namespace = settings.namespace
        self.config_maps = [o for o in manifests if o["kind"] == "ConfigMap"]
        self.job = next(o for o in manifests if o["kind"] == "Job")
        self.name = self.job["metadata"]["name"]
        self.container = self.job["spec"]["template"]["spec"]["containers"][0]["name"]
        self.created: list[tuple[str, str]] = []  # (kind, name), for cleanup

    def apply(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Create (or replace) the ConfigMaps, then the Job; a finished Job left by an earlier run is deleted first."""
        from kubernetes.client.exceptions import ApiException

        for config_map in self.config_maps:
            name = config_map["metadata"]["name"]
            try:
                self.core.create_namespaced_config_map(
                    self.namespace, config_map, _request_timeout=API_TIMEOUT_S
                )
            except ApiException as error:
                if error.status != 409:
                    raise
                self.core.replace_namespaced_config_map(
                    name, self.namespace, config_map, _request_timeout=API_TIMEOUT_S
                )
            self.created.append(("ConfigMap", name))
        for _attempt in range(30):
            try:
                self.batch.create_namespaced_job(self.namespace, self.job, _request_timeout=API_TIMEOUT_S)
                break
            except ApiException as error:
                if error.status != 409:
                    raise
                self._delete_job()  # a Job's spec is immutable: replace the old run's
                sleep(1.0)
        else:
            raise RuntimeError(
                f"Job {self.namespace}/{self.name} still exists after 30 s; delete it and retry"
            )
        self.created.append(("Job", self.name))

    def state(self) -> str:
        """``running``, ``succeeded`` or ``failed``."""
        status = self.batch.read_namespaced_job_status(
            self.name, self.namespace, _request_timeout=API_TIMEOUT_S
        ).status
        if status is None:
            return "running"
        conditions = {c.type: c.status for c in (status.conditions or [])}
        if (status.succeeded or 0) >= 1 or conditions.get("Complete") == "True":
            return "succeeded"
        if (status.failed or 0) >= 1 or conditions.get("Failed") == "True":
            return "failed"
        return "running"

    def logs(self) -> str:
        """The log of the Job's (last) pod: hey's summary."""
        pods = [
            pod
            for pod in self.core.list_namespaced_pod(
                self.namespace, label_selector=f"{JOB_NAME_LABEL}={self.name}", _request_timeout=API_TIMEOUT_S
            ).items
            if labels_match(pod.metadata.labels, {JOB_NAME_LABEL: self.name})
        ]
        if not pods:
            return ""
        pods.sort(key=lambda p: str(p.metadata.creation_timestamp or ""))
        return self.core.read_namespaced_pod_log(
            pods[-1].metadata.name, self.namespace, container=self.container, _request_timeout=API_TIMEOUT_S
        )

    def _delete_job(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.delete_namespaced_job(
                self.name, self.namespace, propagation_policy="Background", _request_timeout=API_TIMEOUT_S
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def delete(self) -> list[str]:
        """Delete what :meth:`apply` created (the Job's pods go with it); return what could not be deleted."""
        from kubernetes.client.exceptions import ApiException

        problems: list[str] = []
        for kind, name in reversed(self.created):
            try:
                if kind == "Job":
                    self._delete_job()
                else:
                    self.core.delete_namespaced_config_map(
                        name, self.namespace, _request_timeout=API_TIMEOUT_S
                    )
            except (ApiException, OSError) as error:
                if not (isinstance(error, ApiException) and error.status == 404):
                    problems.append(f"{kind} {self.namespace}/{name}: {error}")
        self.created.clear()
        return problems


@dataclass
class ClusterResult:
    """What a cluster run saw."""

    samples: list[ReplicaSample]
    job_state: str
    hey_log: str = ""
    hey: HeyResult | None = None
    csv_path: Path | None = None
    png_path: Path | None = None
    cleanup_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.job_state == "succeeded" and self.hey is not None and self.hey.ok_requests > 0


def run_cluster(
    settings: ClusterSettings,
    api_client: Any,
    out: Out = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    plot: bool = True,
) -> ClusterResult:
    """Apply the hey Job, sample replicas until it ends, print the table and hey's summary, clean up."""
    manifests = load_manifests(settings)
    watcher = ReplicaWatcher(api_client, settings.namespace, settings.selector)
    job = HeyJob(api_client, settings, manifests)
    samples: list[ReplicaSample] = []
    result = ClusterResult(samples=samples, job_state="not started")
    out(
        f"hey -z {settings.duration} -c {settings.concurrency} -> {settings.url}  "
        f"(Job {settings.namespace}/{job.name}, watching pods {selector_string(settings.selector)} every {settings.interval_s:g} s)"
    )
    try:
        start = clock()
        job.apply(sleep)
        out(TABLE_HEADER)
        deadline = start + settings.timeout_s
        while True:
            sample = watcher.sample(clock(), start)
            samples.append(sample)
            out(format_sample(sample))
            result.job_state = job.state()
            if result.job_state != "running":
                break
            if clock() > deadline:
                result.job_state = "timed out"
                out(
                    f"the Job did not finish within {settings.timeout_s:.0f} s; `kubectl -n {settings.namespace} describe job {job.name}` says why"
                )
                break
            sleep(settings.interval_s)
        out(f"Job {job.name} {result.job_state}; {summarize_replicas(samples)}")
        result.hey_log = job.logs()
        if result.hey_log:
            out(result.hey_log.rstrip())
            try:
                result.hey = parse_hey_summary(result.hey_log)
                out(f"hey: {result.hey.summary_line()}")
            except HeyError as error:
                out(f"hey's log has no summary: {error}")
        else:
            out(
                f"no log from the Job's pod; `kubectl -n {settings.namespace} logs job/{job.name}` may say more"
            )
    finally:
        # Also on Ctrl-C and errors: leave nothing running on the cluster.
        result.cleanup_problems = job.delete()
        for problem in result.cleanup_problems:
            out(f"could not delete {problem}; delete it by hand")
        if samples:
            stamp = datetime.fromtimestamp(samples[0].time).strftime("%Y%m%d-%H%M%S")
            result.csv_path = write_replicas_csv(samples, settings.output_dir / f"replicas-{stamp}.csv")
            out(f"replicas CSV: {result.csv_path}")
            if plot:
                from load.report import make_report

                result.png_path = make_report(
                    None, result.csv_path, title=f"{settings.inference_service}: replicas under hey"
                )
                out(f"plot: {result.png_path}")
    return result


def kubernetes_client() -> Any:
    """An ApiClient from in-cluster config (inside a pod) or ``KUBECONFIG``/``~/.kube/config``."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except ConfigException as error:
        raise ValueError(
            f"no usable Kubernetes configuration ({error}); set KUBECONFIG to a kubeconfig file or run inside "
            "a cluster, or use --local for the local stack"
        ) from None
    return client.ApiClient()


def cluster_available(env: Mapping[str, str] | None = None) -> bool:
    """True when in-cluster config or a kubeconfig exists."""
    env = os.environ if env is None else env
    if env.get("KUBERNETES_SERVICE_HOST"):
        return True
    kubeconfig = env.get("KUBECONFIG")
    if kubeconfig:
        return any(Path(p).expanduser().is_file() for p in kubeconfig.split(os.pathsep) if p)
    return False


# -- local mode -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalOptions:
    duration: str = "10s"
    concurrency: int = 50
    locust_users: int = 20
    locust_seconds: int = 20


@dataclass
class LocalResult:
    hey: dict[str, HeyResult] = field(default_factory=dict)  # target -> result
    locust: Any = None  # load.locustrun.LocustRun
    png_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        hey_ok = bool(self.hey) and all(r.ok_requests > 0 and r.ok_ratio >= 0.99 for r in self.hey.values())
        locust_ok = (
            self.locust is not None
            and self.locust.aggregated.requests > 0
            and self.locust.aggregated.failures == 0
        )
        return hey_ok and locust_ok


def check_answers(url: str, kind: str, timeout_s: float = 5.0) -> str | None:
    """None if ``url`` answers the known flowers correctly, else one line saying what is wrong."""
    import httpx

    from load.checks import KNOWN_FLOWERS, WrongAnswer, check_frontend, check_v1, frontend_body, v1_body

    body, check = (v1_body, check_v1) if kind == "predictor" else (frontend_body, check_frontend)
    try:
        response = httpx.post(url, json=body(KNOWN_FLOWERS), timeout=timeout_s)
    except httpx.TransportError as error:
        return f"the {kind} at {url} is not answering ({type(error).__name__}: {error})"
    if response.status_code != 200:
        return f"the {kind} at {url} answered HTTP {response.status_code}: {response.text[:200]}"
    try:
        check(response.json(), KNOWN_FLOWERS, response.headers)
    except (ValueError, WrongAnswer) as error:
        return f"the {kind} at {url} answers wrongly: {error}"
    return None


def run_local(settings: LoadSettings, options: LocalOptions, out: Out = print) -> LocalResult:
    """hey against the predictor (and the frontend if it is up), a short Locust run, a plot."""
    import json

    from load.checks import KNOWN_FLOWERS, frontend_body, v1_body
    from load.hey import run_hey
    from load.locustrun import run_locust
    from load.report import make_report

    result = LocalResult()
    problem = check_answers(settings.v1_predict_url, "predictor")
    if problem:
        out(
            f"{problem}; start the local stack with `make up` (or set KFCHAIN_PREDICTOR_URL) and run this again"
        )
        result.notes.append(problem)
        return result
    targets = {"predictor V1": (settings.v1_predict_url, v1_body(KNOWN_FLOWERS))}
    frontend_problem = check_answers(settings.frontend_predict_url, "frontend")
    if frontend_problem:
        out(f"{frontend_problem}; skipping the frontend (start it with `make up`)")
        result.notes.append(frontend_problem)
    else:
        targets["frontend"] = (settings.frontend_predict_url, frontend_body(KNOWN_FLOWERS))
    for name, (url, body) in targets.items():
        out(f"hey -z {options.duration} -c {options.concurrency} -> {url}")
        result.hey[name] = run_hey(
            url, body=json.dumps(body).encode(), duration=options.duration, concurrency=options.concurrency
        )
        out(f"  {name}: {result.hey[name].summary_line()}")

    classes = ["PredictorV1User", "PredictorV2User"] + ([] if frontend_problem else ["FrontendUser"])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    prefix = settings.output_dir / f"locust-local-{stamp}"
    out(f"locust: {options.locust_users} users ({', '.join(classes)}) for {options.locust_seconds} s")
    run = run_locust(
        settings,
        prefix,
        users=options.locust_users,
        spawn_rate=options.locust_users,
        run_time_s=options.locust_seconds,
        user_classes=classes,
    )
    result.locust = run
    for name, stats in sorted(run.by_name.items()):
        out(f"  {name:38} {stats.summary_line()}")
    out(f"  {'all':38} {run.aggregated.summary_line()}")
    for failure, count in sorted(run.failures.items(), key=lambda item: -item[1])[:5]:
        out(f"  failure x{count}: {failure}")
    result.png_path = make_report(run.csv_prefix, title="local stack: Locust steady load")
    out(f"reports: {run.html_path} (HTML), {run.csv_prefix}_stats*.csv (CSV)")
    out(f"plot: {result.png_path}")
    return result


# -- command line -----------------------------------------------------------------------------------


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.autoscale", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--cluster", action="store_true", help="hey Job + replica watch on Kubernetes")
    mode.add_argument("--local", action="store_true", help="hey + Locust against the local stack")
    parser.add_argument("--duration", help="hey -z (cluster default 1m, local 10s; env KFCHAIN_HEY_DURATION)")
    parser.add_argument(
        "--concurrency", type=int, help="hey -c (cluster default 500, local 50; env KFCHAIN_HEY_CONCURRENCY)"
    )
    parser.add_argument(
        "--interval", type=float, help="seconds between replica samples (env KFCHAIN_WATCH_INTERVAL, 5)"
    )
    parser.add_argument(
        "--namespace", help="namespace of the InferenceService (env KFCHAIN_NAMESPACE, kfchain)"
    )
    parser.add_argument("--locust-seconds", type=int, default=20, help="local: length of the Locust run")
    parser.add_argument("--locust-users", type=int, default=20, help="local: Locust users")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # `kill` cleans up like Ctrl-C
    use_cluster = args.cluster or (not args.local and cluster_available())
    try:
        if use_cluster:
            settings = ClusterSettings.from_env()
            overrides = {
                "duration": args.duration,
                "concurrency": args.concurrency,
                "interval_s": args.interval,
                "namespace": args.namespace,
            }
            settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
            result = run_cluster(settings, kubernetes_client())
            return 0 if result.ok else 1
        load_settings = LoadSettings.from_env()
        options = LocalOptions(
            duration=args.duration or os.environ.get("KFCHAIN_HEY_DURATION") or "10s",
            concurrency=args.concurrency or env_int(os.environ, "KFCHAIN_HEY_CONCURRENCY", 50, minimum=1),
            locust_users=args.locust_users,
            locust_seconds=args.locust_seconds,
        )
        duration_seconds(options.duration)
        local = run_local(load_settings, options)
        return 0 if local.ok else 1
    except KeyboardInterrupt:
        print(
            "interrupted" + ("; the Job and ConfigMaps were deleted" if use_cluster else ""), file=sys.stderr
        )
        return 130
    except (ValueError, HeyError, FileNotFoundError, LocustRunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the Kubernetes client's errors: say which call failed, no traceback wall
        if type(error).__module__.startswith("kubernetes."):
            print(
                f"error from the Kubernetes API ({type(error).__name__}): {str(error)[:500]}", file=sys.stderr
            )
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
