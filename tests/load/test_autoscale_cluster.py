"""The cluster side of `make test_autoscaling` against kmock's KubernetesEmulator.

``run_cluster`` runs in a worker thread with the real kubernetes client; each of its sleeps between
replica samples advances a scripted cluster on the emulator's event loop: the autoscaler asks for
3 replicas, the new pods become Ready, then the hey Job completes with a real hey summary as its log.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client

from load.autoscale import PREDICTOR_LABEL, REVISION_LABEL, ClusterSettings, run_cluster

NAMESPACE = "kfchain"
REVISION = "iris-predictor-00001"
HEY_LOG = """
Summary:
  Total:\t60.0213 secs
  Slowest:\t1.2031 secs
  Fastest:\t0.0021 secs
  Average:\t0.1523 secs
  Requests/sec:\t3280.5117

Latency distribution:
  10% in 0.0213 secs
  25% in 0.0512 secs
  50% in 0.1201 secs
  75% in 0.2002 secs
  90% in 0.3011 secs
  95% in 0.4105 secs
  99% in 0.8123 secs

Status code distribution:
  [200]\t196801 responses
  [503]\t100 responses
"""

PODS = ("v1/pods", NAMESPACE)
JOBS = ("batch/v1/jobs", NAMESPACE)
CONFIGMAPS = ("v1/configmaps", NAMESPACE)
DEPLOYMENT = ("apps/v1/deployments", NAMESPACE, f"{REVISION}-deployment")


def predictor_pod(name: str, ready: bool) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {PREDICTOR_LABEL: "iris", REVISION_LABEL: REVISION},
        },
        "status": {
            "phase": "Running" if ready else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


@dataclasses.dataclass
class Cluster:
    emulator: kmock.KubernetesEmulator
    api: client.ApiClient
    settings: ClusterSettings


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
        for resource in ("v1/pods", "v1/configmaps", "batch/v1/jobs", "apps/v1/deployments"):
            emulator.resources[resource] = kmock.ResourceInfo()
        emulator.objects[(*PODS, "iris-1")] = predictor_pod("iris-1", ready=True)
        # Another app's pod in the same namespace must not be counted as a predictor replica.
        emulator.objects[(*PODS, "frontend-1")] = {
            "metadata": {"name": "frontend-1", "namespace": NAMESPACE, "labels": {"app": "frontend"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
        labels = {PREDICTOR_LABEL: "iris", REVISION_LABEL: REVISION}
        emulator.objects[DEPLOYMENT] = {
            "metadata": {"name": DEPLOYMENT[2], "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {REVISION_LABEL: REVISION}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "kserve-container"}]},
                },
            },
        }
        configuration = client.Configuration()
        configuration.host = str(server.url).rstrip("/")
        api = client.ApiClient(configuration)
        settings = ClusterSettings(
            namespace=NAMESPACE, duration="30s", concurrency=100, interval_s=5, output_dir=tmp_path
        )
        try:
            yield Cluster(emulator, api, settings)
        finally:
            api.close()


def scripted(
    loop: asyncio.AbstractEventLoop, steps: list[Callable[[], None]]
) -> tuple[Callable[[float], None], Callable[[], float]]:
    """A sleep that runs the next cluster change on the emulator's loop, and a clock it advances."""
    now = [1_700_000_000.0]
    remaining = list(steps)

    async def change(step: Callable[[], None]) -> None:
        step()

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if remaining:
            asyncio.run_coroutine_threadsafe(change(remaining.pop(0)), loop).result(timeout=10)

    return sleep, lambda: now[0]


async def test_watch_prints_replicas_over_time_and_hey_summary_then_cleans_up(cluster: Cluster) -> None:
    emulator = cluster.emulator
    # An aborted earlier run left its finished Job behind: the new run replaces it.
    emulator.objects[(*JOBS, "hey-load")] = {
        "metadata": {"name": "hey-load", "namespace": NAMESPACE},
        "status": {"succeeded": 1},
    }

    def autoscaler_wants_three() -> None:
        emulator.objects[DEPLOYMENT].patch({"spec": {"replicas": 3}})
        emulator.objects[(*PODS, "iris-2")] = predictor_pod("iris-2", ready=False)
        emulator.objects[(*PODS, "iris-3")] = predictor_pod("iris-3", ready=False)

    def new_pods_ready() -> None:
        for name in ("iris-2", "iris-3"):
            emulator.objects[(*PODS, name)].patch(predictor_pod(name, ready=True))

    def job_completes() -> None:
        emulator.objects[(*JOBS, "hey-load")].patch(
            {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}
        )
        emulator.objects[(*PODS, "hey-load-x7k2p")] = {
            "metadata": {
                "name": "hey-load-x7k2p",
                "namespace": NAMESPACE,
                "labels": {"job-name": "hey-load"},
            },
            "status": {"phase": "Succeeded"},
        }
        emulator[f"get /api/v1/namespaces/{NAMESPACE}/pods/hey-load-x7k2p/log"] << HEY_LOG.encode()

    def job_is_running() -> None:
        # The Job the run created has no status yet: it is running.
        assert emulator.objects[(*JOBS, "hey-load")].get("status") is None

    sleep, clock = scripted(
        asyncio.get_running_loop(), [autoscaler_wants_three, new_pods_ready, job_completes]
    )
    lines: list[str] = []
    # The first sleep call is the leftover Job's replacement in apply(); check the new Job then.
    sleep_after_replace = _prepend(sleep, job_is_running)
    result = await asyncio.to_thread(
        run_cluster, cluster.settings, cluster.api, lines.append, sleep_after_replace, clock
    )

    assert [(s.desired_replicas, s.ready_pods, s.pods) for s in result.samples] == [
        (1, 1, 1),
        (3, 1, 3),
        (3, 3, 3),
        (3, 3, 3),
    ]
    assert result.samples[1].revisions == {REVISION: "1/3"}
    output = "\n".join(lines)
    assert "desired" in output and "ready" in output
    assert f"{REVISION}=3/3" in output
    assert "ready pods 1 -> peak 3" in output
    assert "Requests/sec:\t3280.5117" in output  # hey's own summary, from the Job's pod log
    assert result.ok and result.hey is not None
    assert result.hey.status_codes == {200: 196801, 503: 100}
    assert "3280.5 req/s" in output

    # The Job got the configured load, then everything the run created is gone.
    settings_map = emulator.objects[(*CONFIGMAPS, "hey-settings")]
    assert settings_map.last["data"]["HEY_DURATION"] == "30s"
    assert settings_map.last["data"]["HEY_CONCURRENCY"] == "100"
    assert (
        settings_map.last["data"]["HEY_URL"] == "http://iris.kfchain.svc.cluster.local/v1/models/iris:predict"
    )
    assert settings_map.deleted
    assert emulator.objects[(*CONFIGMAPS, "hey-payload")].deleted
    assert emulator.objects[(*JOBS, "hey-load")].deleted
    assert result.cleanup_problems == []

    assert result.csv_path is not None
    with result.csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["elapsed_s"], r["ready_pods"], r["desired_replicas"]) for r in rows] == [
        ("0.0", "1", "1"),
        ("5.0", "1", "3"),
        ("10.0", "3", "3"),
        ("15.0", "3", "3"),
    ]
    assert result.png_path is not None and result.png_path.stat().st_size > 10_000


def _prepend(sleep: Callable[[float], None], check: Callable[[], None]) -> Callable[[float], None]:
    """Run ``check`` in the first sleep (inside apply's retry), then behave like ``sleep``."""
    calls = [0]

    def wrapped(seconds: float) -> None:
        calls[0] += 1
        if calls[0] == 1:
            return  # apply() deleted the old Job and waits before creating the new one
        if calls[0] == 2:
            check()
        sleep(seconds)

    return wrapped


async def test_ctrl_c_during_the_watch_still_deletes_the_job_and_configmaps(cluster: Cluster) -> None:
    emulator = cluster.emulator
    calls = [0]

    def interrupted_sleep(seconds: float) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt

    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        await asyncio.to_thread(
            run_cluster, cluster.settings, cluster.api, lines.append, interrupted_sleep, plot=False
        )

    assert emulator.objects[(*JOBS, "hey-load")].deleted
    assert emulator.objects[(*CONFIGMAPS, "hey-settings")].deleted
    assert emulator.objects[(*CONFIGMAPS, "hey-payload")].deleted
    # What was seen before Ctrl-C is kept for load.report.
    csv_files = list(cluster.settings.output_dir.glob("replicas-*.csv"))
    assert len(csv_files) == 1 and len(csv_files[0].read_text().splitlines()) == 3  # header + 2 samples


async def test_failed_job_is_reported_and_cleaned_up(cluster: Cluster) -> None:
    emulator = cluster.emulator

    def job_fails() -> None:
        emulator.objects[(*JOBS, "hey-load")].patch({"status": {"failed": 1}})

    sleep, clock = scripted(asyncio.get_running_loop(), [job_fails])
    lines: list[str] = []
    settings = dataclasses.replace(cluster.settings, interval_s=2)
    result = await asyncio.to_thread(run_cluster, settings, cluster.api, lines.append, sleep, clock, False)

    assert result.job_state == "failed" and not result.ok
    assert any("Job hey-load failed" in line for line in lines)
    assert any("no log from the Job's pod" in line for line in lines)
    assert emulator.objects[(*JOBS, "hey-load")].deleted


def test_applied_objects_still_validate_against_the_kubernetes_schemas(tmp_path: Path) -> None:
    from load.autoscale import load_manifests
    from tests.support.crd_schema import validate

    settings = ClusterSettings(
        namespace="load-test", inference_service="iris", duration="2m", concurrency=50, output_dir=tmp_path
    )
    objects = load_manifests(settings)
    for obj in objects:
        validate(obj, source=f"load/k8s (as applied): {obj['kind']}")
    assert {o["metadata"]["namespace"] for o in objects} == {"load-test"}
    hey_settings = next(o for o in objects if "HEY_URL" in o.get("data", {}))
    assert hey_settings["data"]["HEY_URL"] == "http://iris.load-test.svc.cluster.local/v1/models/iris:predict"
    with pytest.raises(ValueError, match="not like 30s, 1m or 1m30s"):
        ClusterSettings(duration="a minute")
