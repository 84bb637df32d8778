"""Runs the local stack as processes: broker, every Knative Service, the predictor, the dispatcher.

``plan_stack`` turns the manifests into ``ProcessSpec`` values (command from the manifest, ``python``
replaced by this interpreter, ``PORT`` and the local environment set). ``Supervisor`` starts them with
logs in ``$KFCHAIN_HOME/logs/<name>.log``, waits for their readiness probes, restarts a process that
exits with exponential backoff, records pids and URLs in ``$KFCHAIN_HOME/run/stack.json`` and stops
everything in reverse order (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from events.broker import port_in_use
from events.errors import BrokerUnavailableError
from events.kafka import ensure_topics, wait_until_ready
from events.settings import KafkaSettings
from knative.local.manifests import Manifests, Workload
from knative.local.routes import broker_topic, dead_letter_topic, local_port, routes_from_manifests, topics_of
from knative.local.settings import REPO_ROOT, LocalSettings, port_variable, short_name
from knative.local.state import ProcessState, StackState, pid_alive, write_state

log = logging.getLogger("knative.local.supervisor")

PREDICTOR_RUNTIME = "kfchain-predictor"
DEFAULT_PREDICTOR_COMMAND = ("python", "-m", "services.predictor")
# The predictor answers /v2/health/ready only once a model is rolled out; "up" means it serves HTTP.
PREDICTOR_PROBE = "/v2/health/live"
DEFAULT_PROBE = "/health/readiness"
RESTART_MAX_DELAY_S = 30.0
STABLE_AFTER_S = 30.0  # a process that ran this long has its restart backoff reset


class StackError(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    probe_path: str | None = DEFAULT_PROBE  # None: alive is ready
    metrics_path: str | None = "/metrics"
    host: str = "127.0.0.1"

    @property
    def url(self) -> str | None:
        return f"http://{self.host}:{self.port}" if self.port else None

    @property
    def probe_url(self) -> str | None:
        return f"{self.url}{self.probe_path}" if self.url and self.probe_path else None


def _command(command: tuple[str, ...]) -> list[str]:
    # "python" in a manifest is the image's interpreter; locally it is this one (the venv's).
    first = sys.executable if command[0] in ("python", "python3") else command[0]
    return [first, *command[1:]]


def _localized(env: tuple[tuple[str, str], ...]) -> dict[str, str]:
    # Cluster manifests bind 0.0.0.0 (the pod IP); the local stack stays on loopback.
    return {k: ("127.0.0.1" if k.endswith("_HOST") and v == "0.0.0.0" else v) for k, v in env}


@dataclass
class StackPlan:
    processes: list[ProcessSpec]
    topics: list[str]
    topic: str
    dlq_topic: str
    bootstrap_servers: str
    start_broker: bool
    urls: dict[str, str] = field(default_factory=dict)


def selected_workloads(manifests: Manifests) -> list[Workload]:
    """Knative Services annotated ``kfchain.io/local: "true"`` (all of them if none is annotated),
    then the predictor's ServingRuntime if there is one."""
    services = list(manifests.services.values())
    if any(s.local is not None for s in services):
        services = [s for s in services if s.local]
    runtime = manifests.runtimes.get(PREDICTOR_RUNTIME)
    if runtime is not None and runtime.local is not False:
        services.append(runtime)
    return services


def plan_stack(manifests: Manifests, local: LocalSettings, kafka: KafkaSettings) -> StackPlan:
    """What to run: one ProcessSpec per process, the topics to create, the URLs services get."""
    start_broker = local.external_kafka is None
    bootstrap = local.external_kafka or f"127.0.0.1:{local.kafka_port}"
    topic = broker_topic(manifests, kafka.topic)
    dlq = dead_letter_topic(manifests, kafka.dlq_topic)
    routes = routes_from_manifests(manifests, local, topic)
    workloads = selected_workloads(manifests)
    if not any(short_name(w.name) == "predictor" for w in workloads):
        workloads.append(
            Workload(
                "ServingRuntime",
                PREDICTOR_RUNTIME,
                DEFAULT_PREDICTOR_COMMAND,
                (),
                8080,
                None,
                True,
                None,
                "(built-in default)",
            )
        )
    ports = {w.name: local_port(w, local) for w in workloads}
    urls = {short_name(name): f"http://{local.host}:{port}" for name, port in ports.items()}
    common = {
        "KFCHAIN_HOME": str(local.home.resolve()),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KFCHAIN_TOPIC": topic,
        "KFCHAIN_DLQ_TOPIC": dlq,
        "KFCHAIN_MANIFESTS": str(local.manifests.resolve()),
        "KFCHAIN_DISPATCHER_METRICS_PORT": str(local.metrics_port),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "PYTHONUNBUFFERED": "1",
        **{port_variable(name): str(port) for name, port in ports.items()},
    }
    if "predictor" in urls:
        common["KFCHAIN_PREDICTOR_URL"] = urls["predictor"]
    if "frontend" in urls:
        common["KFCHAIN_FRONTEND_URL"] = urls["frontend"]
    processes = []
    if start_broker:
        processes.append(
            ProcessSpec("broker", [sys.executable, "-m", "events.broker", "--port", str(local.kafka_port)],
                        _broker_env(common), probe_path=None, metrics_path=None)
        )  # fmt: skip
    for workload in workloads:
        name = short_name(workload.name)
        is_predictor = name == "predictor"
        probe = PREDICTOR_PROBE if is_predictor else (workload.readiness_path or DEFAULT_PROBE)
        env = {**_localized(workload.env), **os.environ, **common, "PORT": str(ports[workload.name])}
        processes.append(ProcessSpec(name, _command(workload.command), env, ports[workload.name], probe))
    dispatcher_argv = [
        sys.executable,
        "-m",
        "knative.local",
        "dispatch",
        "--manifests",
        str(local.manifests.resolve()),
    ]
    processes.append(
        ProcessSpec(
            "dispatcher", dispatcher_argv, {**os.environ, **common}, local.metrics_port, DEFAULT_PROBE
        )
    )
    topics = list(dict.fromkeys([topic, dlq, *topics_of(routes, manifests)]))
    return StackPlan(processes, topics, topic, dlq, bootstrap, start_broker, urls)


def _broker_env(common: dict[str, str]) -> dict[str, str]:
    # events.broker uses an existing broker when KAFKA_BOOTSTRAP_SERVERS is set; this one must start Tansu.
    env = {**os.environ, **common}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return env


def probe(url: str | None, timeout_s: float = 1.0) -> bool:
    """Whether GET ``url`` answers 2xx."""
    if url is None:
        return False
    try:
        return httpx.get(url, timeout=timeout_s).is_success
    except httpx.HTTPError:
        return False


class ManagedProcess:
    """One child process: started in its own session, output appended to its log file."""

    def __init__(self, spec: ProcessSpec, logs_dir: Path) -> None:
        self.spec = spec
        self.log_path = logs_dir / f"{spec.name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.failures = 0  # consecutive quick exits, for the backoff
        self.started_at = 0.0
        self.restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(
                f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.spec.argv)}\n".encode()
            )
            out.flush()
            self.popen = subprocess.Popen(
                self.spec.argv,
                env=self.spec.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
            )
        self.started_at = time.monotonic()
        self.restart_at = None

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def terminate(self) -> None:
        if self.popen and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def ready(self) -> bool:
        if self.exit_code() is not None or self.popen is None:
            return False
        return True if self.spec.probe_url is None else probe(self.spec.probe_url)

    def state(self) -> ProcessState:
        metrics = (
            f"{self.spec.url}{self.spec.metrics_path}" if self.spec.url and self.spec.metrics_path else None
        )
        return ProcessState(
            self.spec.name,
            self.pid,
            self.spec.url,
            self.spec.probe_url,
            str(self.log_path),
            self.spec.argv,
            self.restarts,
            metrics,
        )


class Supervisor:
    """Starts, watches, restarts and stops the processes of a ``StackPlan``."""

    def __init__(self, plan: StackPlan, local: LocalSettings, kafka: KafkaSettings) -> None:
        self.plan = plan
        self.local = local
        self.kafka = kafka
        self.processes = [ManagedProcess(spec, local.logs_dir) for spec in plan.processes]
        self.stopping = threading.Event()
        self.state = StackState(
            supervisor_pid=os.getpid(),
            home=str(local.home.resolve()),
            manifests=str(local.manifests.resolve()),
            bootstrap_servers=plan.bootstrap_servers,
            topic=plan.topic,
            dlq_topic=plan.dlq_topic,
        )

    # -- start -----------------------------------------------------------------------------------
    def check_ports(self) -> None:
        ports = [(p.spec.name, p.spec.port) for p in self.processes if p.spec.port]
        if self.plan.start_broker:
            ports.append(("broker", self.local.kafka_port))
        for name, port in ports:
            if port and port_in_use(self.local.host, port):
                variable = {
                    "broker": "KFCHAIN_KAFKA_PORT",
                    "dispatcher": "KFCHAIN_DISPATCHER_METRICS_PORT",
                }.get(name) or port_variable(name)
                raise StackError(
                    f"port {port} for {name} is in use (another stack? try `python -m knative.local status`); "
                    f"stop what uses it or set {variable} to another port"
                )

    def start(self) -> None:
        """Start the broker (if any) and topics, then every other process; write the state file."""
        self.check_ports()
        self.local.logs_dir.mkdir(parents=True, exist_ok=True)
        self.write_prometheus_config()
        kafka = self._kafka_settings()
        for process in self.processes:
            if process.spec.name == "broker":
                process.start()
                self._write_state()
                try:
                    wait_until_ready(kafka, 30)
                except BrokerUnavailableError as exc:
                    raise StackError(
                        f"the embedded broker did not start ({exc}); see {process.log_path}"
                    ) from None
        try:
            ensure_topics(kafka, self.plan.topics)
        except BrokerUnavailableError as exc:
            raise StackError(str(exc)) from None
        for process in self.processes:
            if process.spec.name != "broker":
                process.start()
        self._write_state()

    def _kafka_settings(self) -> KafkaSettings:
        return dataclasses.replace(self.kafka, bootstrap_servers=self.plan.bootstrap_servers)

    def readiness(self) -> dict[str, bool]:
        return {p.spec.name: p.ready() for p in self.processes}

    def wait_ready(self, timeout_s: float) -> dict[str, bool]:
        """Poll readiness (restarting crashed processes meanwhile) until all are ready or the timeout."""
        deadline = time.monotonic() + timeout_s
        ready = self.readiness()
        while not all(ready.values()) and time.monotonic() < deadline and not self.stopping.is_set():
            self.watch_once()
            self.stopping.wait(0.3)
            ready = self.readiness()
        self.state.settled = True
        self.state.ready = all(ready.values())
        self._write_state()
        return ready

    # -- watch -----------------------------------------------------------------------------------
    def watch_once(self) -> None:
        """Restart processes that exited, after a backoff that doubles on each quick exit."""
        now = time.monotonic()
        changed = False
        for process in self.processes:
            code = process.exit_code()
            if code is None or self.stopping.is_set():
                continue
            if process.restart_at is None:
                ran = now - process.started_at
                process.failures = 1 if ran >= STABLE_AFTER_S else process.failures + 1
                delay = min(RESTART_MAX_DELAY_S, 2.0 ** (process.failures - 1))
                process.restart_at = now + delay
                log.warning("%s exited with code %s after %.1fs; restarting in %.0fs (log: %s)",
                            process.spec.name, code, ran, delay, process.log_path)  # fmt: skip
            elif now >= process.restart_at:
                process.restarts += 1
                process.start()
                changed = True
        if changed:
            self.state.ready = all(self.readiness().values())
            self._write_state()

    def run(self) -> None:
        """Watch until ``stopping`` is set (by a signal or ``stop``)."""
        while not self.stopping.wait(0.5):
            self.watch_once()

    # -- stop ------------------------------------------------------------------------------------
    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM in reverse start order (dispatcher first, broker last), SIGKILL what is left."""
        self.stopping.set()
        ordered = list(reversed(self.processes))
        broker = [p for p in ordered if p.spec.name == "broker"]
        others = [p for p in ordered if p.spec.name != "broker"]
        for group in (others, broker):
            for process in group:
                process.terminate()
            deadline = time.monotonic() + grace_s
            for process in group:
                if process.popen is None:
                    continue
                try:
                    process.popen.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within %.0fs; killing it", process.spec.name, grace_s)
                    process.kill()
        self.local.state_file.unlink(missing_ok=True)

    # -- files -----------------------------------------------------------------------------------
    def _write_state(self) -> None:
        self.state.processes = [p.state() for p in self.processes]
        write_state(self.local.state_file, self.state)

    def write_prometheus_config(self) -> Path:
        """``$KFCHAIN_HOME/prometheus.yml``: a scrape job per process that serves ``/metrics``."""
        jobs = []
        for spec in self.plan.processes:
            if spec.port and spec.metrics_path:
                jobs.append(
                    {
                        "job_name": f"kfchain-{spec.name}",
                        "metrics_path": spec.metrics_path,
                        "static_configs": [
                            {"targets": [f"{spec.host}:{spec.port}"], "labels": {"service": spec.name}}
                        ],
                    }
                )
        config = {"global": {"scrape_interval": "5s"}, "scrape_configs": jobs}
        path = self.local.home / "prometheus.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# Written by `python -m knative.local up`: scrape every local kfchain process.\n"
            f"# prometheus --config.file={path}\n" + yaml.safe_dump(config, sort_keys=False)
        )
        self.state.prometheus_config = str(path)
        return path


def stop_recorded(state: StackState, timeout_s: float = 30.0) -> list[str]:
    """Stop a stack from its state file: SIGTERM the supervisor, wait; kill leftover children. Returns what was killed."""
    killed: list[str] = []
    if pid_alive(state.supervisor_pid):
        os.kill(state.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(state.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    for process in state.processes:
        if pid_alive(process.pid, process.argv):
            assert process.pid is not None
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(process.name)
    return killed
