"""Submit pipeline runs: locally (``kfp.local.SubprocessRunner``) or to a KFP API server (``kfp.Client``).

Public API (used by ``python -m pipelines.submit`` and by the selector service):

- ``submit_training(settings, ...)`` and ``submit_selection(model_name, model_version, chain_id,
  causation_id, settings, wait=False)`` return a ``RunHandle`` at once (``wait=False``) or a finished
  ``RunResult`` (``wait=True``). A local run that must not block (the selector's HTTP request) runs
  in a child process (``pipelines.background``: ``pipelines.submit`` forked from a warm server); its result lands in
  ``$KFCHAIN_HOME/runs/<run_id>/result.json``.
- ``run_local(...)`` runs a pipeline in this process, reporting progress task by task.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from events.catalogue import MODEL_SELECTION, TRAINING
from events.kafka import wait_until_ready
from pipelines.announce import ERRORS_FILE
from pipelines.background import start_run
from pipelines.components import report
from pipelines.kfp_local import loops_on_all_cores, print_and_logging_restored
from pipelines.model import SCALERS, parse_k_values
from pipelines.registry import SqliteRegistry, validate_name
from pipelines.settings import PipelinesSettings
from pipelines.targets import CLUSTER, LOCAL

Progress = Callable[[str], None]
PIPELINES = (TRAINING, MODEL_SELECTION)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULT_FILE = "result.json"
KFP_LOG_FILE = "kfp.log"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([^']+)'")
_TASK_END = re.compile(r"Task '([^']+)' finished with status (SUCCESS|FAILURE)")
_PIPELINE_END = re.compile(r"Pipeline '([^']+)' finished with status (SUCCESS|FAILURE)(.*)")
_EXCEPTION = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit)): (.+)$")
# One local run at a time per process: kfp.local keeps its configuration in a global singleton.
_LOCAL_LOCK = threading.Lock()


class SubmitError(Exception):
    """A run could not be started; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class TaskReport:
    """One finished task: what the component reported and how long KFP took around it."""

    task: str
    status: str
    seconds_inside: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """A finished run."""

    run_id: str
    pipeline: str
    model_name: str
    model_version: str
    state: str  # SUCCEEDED or FAILED
    seconds: float = 0.0
    error: str = ""
    event_id: str = ""
    event_type: str = ""
    chainid: str = ""
    topic: str = ""
    bootstrap_servers: str = ""
    log_path: str = ""
    tasks: list[TaskReport] = field(default_factory=list)
    #: wall time of each KFP task execution (launch, executor, output handling), by task name
    task_wall: dict[str, list[float]] = field(default_factory=dict)
    host: str = ""
    url: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        data = dict(data)
        data["tasks"] = [TaskReport(**t) for t in data.get("tasks", [])]
        return cls(**data)


@dataclass
class RunHandle:
    """A started run. ``wait()`` blocks until it ends and returns its ``RunResult``."""

    run_id: str
    pipeline: str
    model_name: str
    model_version: str
    host: str = ""
    url: str = ""
    run_dir: str = ""
    process: BaseProcess | None = None
    client: Any = None

    def wait(self, timeout: float | None = None) -> RunResult:
        """Wait for the run to end (``TimeoutError`` after ``timeout`` seconds)."""
        if self.process is not None:
            self.process.join(timeout)
            if self.process.exitcode is None:
                raise TimeoutError(f"run {self.run_id} still running after {timeout}s")
            path = Path(self.run_dir) / RESULT_FILE
            if path.exists():
                return RunResult.from_dict(json.loads(path.read_text()))
            log = Path(self.run_dir) / "submit.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            return RunResult(
                self.run_id, self.pipeline, self.model_name, self.model_version, "FAILED",
                error=f"the run process exited with code {self.process.exitcode} before finishing: {tail.strip()}",
            )  # fmt: skip
        if self.client is not None:
            started = time.monotonic()
            run = self.client.wait_for_run_completion(self.run_id, timeout=timeout or 24 * 3600)
            state = str(getattr(run, "state", "")).upper() or "UNKNOWN"
            return RunResult(
                self.run_id, self.pipeline, self.model_name, self.model_version, state,
                seconds=time.monotonic() - started, host=self.host, url=self.url,
            )  # fmt: skip
        raise SubmitError(f"run {self.run_id} has nothing to wait on")


# -- validation -------------------------------------------------------------------------------


def new_run_id(pipeline: str) -> str:
    """A local run id: ``local-<pipeline>-<12 hex>``."""
    return f"local-{pipeline}-{uuid.uuid4().hex[:12]}"


def _check_source(source: str) -> None:
    if source and "://" not in source and not Path(source).is_file():
        raise SubmitError(f"data source {source!r} is not a readable file; give a CSV path or an http(s) URL")


def _check_broker(settings: PipelinesSettings) -> None:
    try:
        wait_until_ready(settings.kafka, min(settings.kafka.timeout_s, 10.0))
    except ConnectionError as exc:
        raise SubmitError(f"the run could not announce its end: {exc}") from exc


def _resolve_version(settings: PipelinesSettings, model_name: str, version: str | None) -> str:
    validate_name("model name", model_name)
    if version:
        return validate_name("model version", version)
    if not settings.local:
        raise SubmitError(
            "--version is required with a KFP host (the cluster registry lives on the model PVC)"
        )
    return SqliteRegistry(settings.registry_path).next_version(model_name)


# -- local runs -------------------------------------------------------------------------------


class _RunStream:
    """Replaces stdout during a local run: writes KFP's log to a file and turns lines into progress.

    What ``progress`` itself prints goes to the real stdout (a thread-local flag marks those writes).
    """

    def __init__(self, log: Any, run_dir: Path, progress: Progress, verbose: bool) -> None:
        self.log, self.run_dir, self.verbose = log, run_dir, verbose
        self.original = sys.stdout
        self._user_progress = progress
        self._emitting = threading.local()
        self.started = time.monotonic()
        self.buffer_text = ""
        self.lock = threading.Lock()
        self.reports: list[TaskReport] = []
        self.starts: dict[str, list[float]] = {}
        self.wall: dict[str, list[float]] = {}
        self.pipeline_state = ""
        self.pipeline_detail = ""
        self.last_exception = ""
        self.errors: list[str] = []

    def progress(self, line: str) -> None:
        self._emitting.on = True
        try:
            self._user_progress(line)
        finally:
            self._emitting.on = False

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if getattr(self._emitting, "on", False):
            return self.original.write(text)
        with self.lock:
            self.log.write(text)
            self.buffer_text += text
            *lines, self.buffer_text = self.buffer_text.split("\n")
            for line in lines:
                self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _note_error(self, text: str) -> None:
        if text and text not in self.errors:
            self.errors.append(text)
            with open(self.run_dir / ERRORS_FILE, "a") as notes:
                notes.write(text + "\n")

    def _line(self, line: str) -> None:
        now = time.monotonic()
        if self.verbose:
            self.progress(line)
        found = report.parse(line)
        if found is not None:
            task, status = str(found.pop("task")), str(found.pop("status"))
            seconds = float(found.pop("seconds", 0.0))
            self.reports.append(TaskReport(task, status, seconds, found))
            if status == "failed":
                self._note_error(f"{task}: {found.get('error', 'failed')}")
            if not self.verbose:
                self.progress(_progress_line(now - self.started, task, status, seconds, found))
            return
        if match := _TASK_START.search(line):
            self.starts.setdefault(match.group(1), []).append(now)
        elif match := _TASK_END.search(line):
            name, status = match.groups()
            starts = self.starts.get(name) or [now]
            self.wall.setdefault(name, []).append(now - starts.pop(0))
            if status == "FAILURE":
                if self.last_exception and not any(self.last_exception in e for e in self.errors):
                    self._note_error(f"{name}: {self.last_exception}")
                if not self.verbose:
                    self.progress(f"  [{now - self.started:6.1f}s] FAILED {name}")
        elif match := _PIPELINE_END.search(line):
            self.pipeline_state = "SUCCEEDED" if match.group(2) == "SUCCESS" else "FAILED"
            self.pipeline_detail = match.group(3).strip(" .")
        elif match := _EXCEPTION.match(line):
            self.last_exception = f"{match.group(1)}: {match.group(2)}"


def _progress_line(at: float, task: str, status: str, seconds: float, info: dict[str, Any]) -> str:
    mark = "ok " if status == "done" else "FAILED"
    details = ", ".join(f"{k}={v}" for k, v in info.items() if k != "error")
    if status != "done":
        details = info.get("error", details)
    return f"  [{at:6.1f}s] {mark} {task:<13} {details}  ({seconds:.2f}s in component)"


def _ensure_importable() -> None:
    """Component subprocesses import ``pipelines``/``events``: make sure they can from any cwd."""
    try:
        from importlib.metadata import distribution

        distribution("kfchain")
        return  # installed (make setup: pip install -e .)
    except Exception:
        pass
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(PROJECT_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *paths])


def pipeline_for(pipeline: str, target: str) -> Any:
    """The pipeline function of ``pipeline`` (training or model-selection) for ``target``."""
    if pipeline == TRAINING:
        from pipelines.training import build_training_pipeline

        return build_training_pipeline(target)
    if pipeline == MODEL_SELECTION:
        from pipelines.selection import build_selection_pipeline

        return build_selection_pipeline(target)
    raise SubmitError(f"pipeline {pipeline!r} is unknown; use one of {list(PIPELINES)}")


def run_local(
    pipeline: str,
    arguments: dict[str, Any],
    settings: PipelinesSettings,
    *,
    run_id: str,
    progress: Progress = lambda line: None,
    verbose: bool = False,
) -> RunResult:
    """Run ``pipeline`` here with kfp.local's SubprocessRunner and wait for it; never raises for a failed run."""
    from kfp import local

    home = settings.home.resolve()
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (home / "artifacts").mkdir(parents=True, exist_ok=True)
    (home / "serving").mkdir(parents=True, exist_ok=True)
    pipeline_func = pipeline_for(pipeline, LOCAL)
    arguments = {
        **arguments,
        "registry_uri": str(home / "registry.db"),
        "run_id": run_id,
        "kafka_bootstrap_servers": settings.kafka.bootstrap_servers,
        "kafka_topic": settings.kafka.topic,
        "notes_dir": str(run_dir),
    }
    if pipeline == MODEL_SELECTION:
        arguments.update(serving_root=str(home / "serving"), serving_uri_prefix="")
    SqliteRegistry(home / "registry.db")  # create the schema once, before parallel tasks open it
    _ensure_importable()
    log_path = run_dir / KFP_LOG_FILE
    progress(
        f"{pipeline} run {run_id}: model {arguments.get('model_name')} version {arguments.get('model_version')}"
        f" (local; KFP log {log_path})"
    )
    started = time.monotonic()
    crash = ""
    with _LOCAL_LOCK, open(log_path, "w") as log:
        stream = _RunStream(log, run_dir, progress, verbose)
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(home / "artifacts"),
            raise_on_error=False,
        )
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(stream),
            print_and_logging_restored(),
            loops_on_all_cores(),
        ):
            # Components run on KFCHAIN_IMAGE on a cluster; locally the current environment is that image.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            try:
                pipeline_func(**arguments)
            except Exception as exc:  # kfp raises for invalid arguments before any task runs
                crash = f"{type(exc).__name__}: {exc}"
    state = stream.pipeline_state or "FAILED"
    error = "; ".join(stream.errors) or crash or (stream.pipeline_detail if state != "SUCCEEDED" else "")
    announced = next(
        (r for r in reversed(stream.reports) if r.task == "announce" and r.status == "done"), None
    )
    if announced is None and state == "SUCCEEDED":
        state, error = "FAILED", "the exit handler did not report an event"
    result = RunResult(
        run_id=run_id,
        pipeline=pipeline,
        model_name=str(arguments.get("model_name", "")),
        model_version=str(arguments.get("model_version", "")),
        state=state,
        seconds=time.monotonic() - started,
        error=error,
        event_id=str(announced.info.get("event_id", "")) if announced else "",
        event_type=str(announced.info.get("event_type", "")) if announced else "",
        chainid=str(announced.info.get("chainid", "")) if announced else "",
        topic=settings.kafka.topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        log_path=str(log_path),
        tasks=stream.reports,
        task_wall=stream.wall,
    )
    (run_dir / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2))
    return result


def local_run_env(settings: PipelinesSettings) -> dict[str, str]:
    """The environment of a local run started in the background (``settings`` travel in it)."""
    env = dict(os.environ)
    env.update(
        KFCHAIN_HOME=str(settings.home.resolve()),
        KFCHAIN_MODEL_NAME=settings.model_name,
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers,
        KFCHAIN_TOPIC=settings.kafka.topic,
        KFCHAIN_DLQ_TOPIC=settings.kafka.dlq_topic,
        KFCHAIN_KAFKA_TIMEOUT=f"{settings.kafka.timeout_s:g}",
        KFCHAIN_KAFKA_IDEMPOTENCE="true" if settings.kafka.idempotence else "false",
    )
    env.pop("KFP_HOST", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _start_local_process(
    settings: PipelinesSettings,
    pipeline: str,
    model_name: str,
    model_version: str,
    run_id: str,
    argv: list[str],
) -> RunHandle:
    run_dir = settings.home.resolve() / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    process = start_run(argv, local_run_env(settings), PROJECT_ROOT, run_dir / "submit.log")
    return RunHandle(run_id, pipeline, model_name, model_version, run_dir=str(run_dir), process=process)


# -- cluster runs -----------------------------------------------------------------------------


def kfp_client(settings: PipelinesSettings) -> Any:
    """A ``kfp.Client`` for ``settings.kfp_host``.

    Auth comes from the environment, never from code: ``KFP_TOKEN`` (bearer token), ``KFP_COOKIE``
    (e.g. ``authservice_session=...`` behind Dex/oauth2-proxy); inside a cluster kfp itself reads the
    projected service-account token (``KF_PIPELINES_SA_TOKEN_PATH``).
    """
    import kfp

    return kfp.Client(
        host=settings.kfp_host,
        namespace=settings.kfp_namespace or "kubeflow",
        existing_token=os.environ.get("KFP_TOKEN") or None,
        cookies=os.environ.get("KFP_COOKIE") or None,
    )


def _submit_cluster(
    settings: PipelinesSettings, pipeline: str, arguments: dict[str, Any], client: Any = None
) -> RunHandle:
    client = client or kfp_client(settings)
    arguments = {
        **arguments,
        "kafka_bootstrap_servers": settings.cluster_kafka_bootstrap,
        "kafka_topic": settings.kafka.topic,
    }
    name = f"kfchain-{pipeline}-{arguments.get('model_version', '')}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        run = client.create_run_from_pipeline_func(
            pipeline_for(pipeline, CLUSTER),
            arguments=arguments,
            run_name=name,
            experiment_name="kfchain",
            namespace=settings.kfp_namespace or None,
            enable_caching=False,
        )
    except Exception as exc:
        raise SubmitError(f"KFP at {settings.kfp_host} refused the {pipeline} run: {exc}") from exc
    run_id = run.run_id
    return RunHandle(
        run_id=run_id,
        pipeline=pipeline,
        model_name=str(arguments.get("model_name", "")),
        model_version=str(arguments.get("model_version", "")),
        host=settings.kfp_host,
        url=f"{settings.kfp_host.rstrip('/')}/#/runs/details/{run_id}",
        client=client,
    )


# -- public API -------------------------------------------------------------------------------


def training_arguments(
    settings: PipelinesSettings,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    k_values: str | list[int] = "1,3,5,7,9",
    scaler: str = "standard",
    source: str = "",
) -> dict[str, Any]:
    """Validated parameters of a training run; errors name the bad value (``SubmitError``)."""
    try:
        ks = parse_k_values(k_values)
        if scaler not in SCALERS:
            raise ValueError(f"scaler {scaler!r} is not supported; use one of {list(SCALERS)}")
        name = model_name or settings.model_name
        version = _resolve_version(settings, name, model_version)
    except ValueError as exc:
        raise SubmitError(str(exc)) from exc
    if settings.local:
        _check_source(source)
    return {"model_name": name, "model_version": version, "k_values": ks, "scaler": scaler, "source": source}


def submit_training(
    settings: PipelinesSettings,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    k_values: str | list[int] = "1,3,5,7,9",
    scaler: str = "standard",
    source: str = "",
    wait: bool = True,
    run_id: str | None = None,
    progress: Progress = lambda line: None,
    verbose: bool = False,
    client: Any = None,
) -> RunHandle | RunResult:
    """Start a training run; ``wait=True`` returns the finished ``RunResult``, else a ``RunHandle``."""
    arguments = training_arguments(
        settings,
        model_name=model_name,
        model_version=model_version,
        k_values=k_values,
        scaler=scaler,
        source=source,
    )
    if not settings.local:
        handle = _submit_cluster(settings, TRAINING, arguments, client)
        return handle.wait() if wait else handle
    _check_broker(settings)
    run_id = run_id or new_run_id(TRAINING)
    if not wait:
        cli = [TRAINING, "--run-id", run_id]
        cli += ["--model-name", arguments["model_name"], "--version", arguments["model_version"]]
        cli += ["--k", ",".join(map(str, arguments["k_values"])), "--scaler", scaler, "--quiet"]
        if source:
            cli += ["--source", str(Path(source).resolve()) if "://" not in source else source]
        return _start_local_process(
            settings, TRAINING, arguments["model_name"], arguments["model_version"], run_id, cli
        )
    return run_local(TRAINING, arguments, settings, run_id=run_id, progress=progress, verbose=verbose)


def submit_selection(
    model_name: str,
    model_version: str,
    chain_id: str,
    causation_id: str,
    settings: PipelinesSettings,
    wait: bool = False,
    *,
    run_id: str | None = None,
    progress: Progress = lambda line: None,
    verbose: bool = False,
    client: Any = None,
) -> RunHandle | RunResult:
    """Start the model-selection run of ``model_name``/``model_version``, continuing chain ``chain_id``.

    ``causation_id`` is the id of the event that caused it (the training run's succeeded event).
    Returns at once with a ``RunHandle`` (``run_id`` known) unless ``wait``; locally the run goes to
    a child process so the caller (an HTTP handler) is not blocked.
    """
    try:
        validate_name("model name", model_name)
        validate_name("model version", model_version)
    except ValueError as exc:
        raise SubmitError(str(exc)) from exc
    arguments = {
        "model_name": model_name,
        "model_version": model_version,
        "chain_id": chain_id,
        "causation_id": causation_id,
    }
    if not settings.local:
        handle = _submit_cluster(settings, MODEL_SELECTION, arguments, client)
        return handle.wait() if wait else handle
    run_id = run_id or new_run_id(MODEL_SELECTION)
    if wait:
        _check_broker(settings)
        return run_local(
            MODEL_SELECTION, arguments, settings, run_id=run_id, progress=progress, verbose=verbose
        )
    argv = selection_argv(model_name, model_version, chain_id, causation_id, run_id)
    return _start_local_process(settings, MODEL_SELECTION, model_name, model_version, run_id, argv)


def selection_argv(
    model_name: str, model_version: str, chain_id: str, causation_id: str, run_id: str
) -> list[str]:
    """The ``python -m pipelines.submit`` arguments of a background selection run."""
    return [
        MODEL_SELECTION.replace("-", "_"),
        "--run-id",
        run_id,
        "--model-name",
        model_name,
        "--version",
        model_version,
        "--chain-id",
        chain_id,
        "--causation-id",
        causation_id,
        "--quiet",
    ]
