"""``python -m knative.local up|status|down|dispatch``: the kfchain stack on one machine.

up [--detach]   start broker, topics, services, predictor and dispatcher from knative/; Ctrl-C stops
status          the table of services, URLs and readiness of the running stack
down            stop the stack started from this KFCHAIN_HOME (from any terminal)
dispatch        only the dispatcher (the Knative Kafka Broker's data plane), as `up` runs it
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from events.settings import KafkaSettings
from knative.local.manifests import ManifestError, load_manifests
from knative.local.settings import LocalSettings, dispatcher_kafka_settings

log = logging.getLogger("knative.local")


def _settings(args: argparse.Namespace) -> tuple[LocalSettings, KafkaSettings]:
    local = LocalSettings.from_env()
    if getattr(args, "manifests", None):
        local = dataclasses.replace(local, manifests=Path(args.manifests))
    if getattr(args, "metrics_port", None) is not None:
        local = dataclasses.replace(local, metrics_port=args.metrics_port)
    return local, KafkaSettings.from_env()


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def status_table(state_processes: list, ready: dict[str, bool]) -> str:
    rows: list[tuple[str, ...]] = [("SERVICE", "URL", "READY", "PID", "RESTARTS", "LOG")]
    for p in state_processes:
        rows.append(
            (
                p.name,
                p.url or "-",
                "yes" if ready.get(p.name) else "no",
                str(p.pid or "-"),
                str(p.restarts),
                p.log,
            )
        )
    return _table(rows)


# -- dispatch --------------------------------------------------------------------------------------
def cmd_dispatch(args: argparse.Namespace) -> int:
    from knative.local.dispatcher import Dispatcher
    from knative.local.routes import broker_topic, routes_from_manifests
    from knative.local.server import DispatcherServer

    local, kafka = _settings(args)
    kafka = dispatcher_kafka_settings(kafka)
    manifests = load_manifests(local.manifests)
    routes = routes_from_manifests(manifests, local, broker_topic(manifests, kafka.topic))
    dispatcher = Dispatcher(routes, kafka, max_in_flight=local.max_in_flight)
    server = DispatcherServer(dispatcher, local.host, local.metrics_port).start()
    dispatcher.start()
    for route in routes:
        log.info("%s %s: %s -> %s (%s, retry %d, dead letters: %s)", route.kind, route.name, ",".join(route.topics),
                 route.subscriber_url, "ordered" if route.ordered else "unordered", route.retry, route.dead_letter or "none")  # fmt: skip
    log.info(
        "dispatcher on %s (metrics %s/metrics); SIGTERM or Ctrl-C stops it",
        kafka.bootstrap_servers,
        server.url,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        if dispatcher.failed():
            log.error(
                "a consumer failed: %s; exiting so the supervisor restarts the dispatcher",
                dispatcher.failed(),
            )
            dispatcher.stop()
            server.stop()
            return 1
    dispatcher.stop()
    server.stop()
    log.info("dispatcher stopped")
    return 0


# -- up --------------------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    from knative.local.state import pid_alive, read_state
    from knative.local.supervisor import StackError, Supervisor, plan_stack, stop_recorded

    local, kafka = _settings(args)
    existing = read_state(local.state_file)
    if existing is not None:
        if pid_alive(existing.supervisor_pid) and existing.supervisor_pid != os.getpid():
            print(f"a stack is already running from {local.home} (supervisor pid {existing.supervisor_pid}); "
                  "see `python -m knative.local status`, stop it with `python -m knative.local down`", file=sys.stderr)  # fmt: skip
            return 1
        stop_recorded(existing, timeout_s=1)  # leftovers of a killed supervisor
        local.state_file.unlink(missing_ok=True)
    if args.detach:
        return _up_detached(local, args)
    plan = plan_stack(load_manifests(local.manifests), local, kafka)
    supervisor = Supervisor(plan, local, kafka)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: supervisor.stopping.set())
    try:
        supervisor.start()
        print(f"starting kfchain from {local.manifests} (logs in {local.logs_dir}) ...", flush=True)
        ready = supervisor.wait_ready(local.ready_timeout_s)
        if not supervisor.stopping.is_set():
            print(status_table(supervisor.state.processes, ready), flush=True)
            if all(ready.values()):
                print(f"\nkfchain is up. Kafka {plan.bootstrap_servers}, topics {plan.topic} / {plan.dlq_topic}; "
                      f"Prometheus config {supervisor.state.prometheus_config}. Ctrl-C stops everything.", flush=True)  # fmt: skip
            else:
                waiting = ", ".join(n for n, ok in ready.items() if not ok)
                print(f"\nnot ready after {local.ready_timeout_s:g}s: {waiting}; see their logs above. "
                      "Still watching (Ctrl-C stops everything).", flush=True)  # fmt: skip
            supervisor.run()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        supervisor.stop()
        return 1
    finally:
        if not supervisor.stopping.is_set() or local.state_file.exists():
            print("stopping kfchain ...", flush=True)
            supervisor.stop()
            print("stopped", flush=True)
    return 0


def _up_detached(local: LocalSettings, args: argparse.Namespace) -> int:
    """Run ``up`` in the background (own session, output in logs/supervisor.log); return once it settled."""
    from knative.local.state import read_state

    local.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = local.logs_dir / "supervisor.log"
    argv = [sys.executable, "-m", "knative.local", "up"] + (
        ["--manifests", str(args.manifests)] if args.manifests else []
    )
    with open(log_path, "ab") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "KFCHAIN_HOME": str(local.home)})  # fmt: skip
    deadline = time.monotonic() + local.ready_timeout_s + 60
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            print("the stack did not start:\n" + "\n".join(tail), file=sys.stderr)
            return 1
        state = read_state(local.state_file)
        if state is not None and state.supervisor_pid == child.pid and state.settled:
            return _print_status(local, detached_pid=child.pid)
        time.sleep(0.3)
    print(
        f"the stack did not report ready within {local.ready_timeout_s + 60:g}s; see {log_path}",
        file=sys.stderr,
    )
    return 1


# -- status / down ---------------------------------------------------------------------------------
def _print_status(local: LocalSettings, detached_pid: int | None = None) -> int:
    from knative.local.state import pid_alive, read_state
    from knative.local.supervisor import probe

    state = read_state(local.state_file)
    if state is None:
        print(
            f"no kfchain stack is running from {local.home} (no {local.state_file}); start one with `python -m knative.local up`"
        )
        return 1
    if not pid_alive(state.supervisor_pid):
        print(
            f"the stack's supervisor (pid {state.supervisor_pid}) is not running; clean up with `python -m knative.local down`"
        )
        return 1
    ready = {
        p.name: (pid_alive(p.pid, p.argv) and (p.probe is None or probe(p.probe))) for p in state.processes
    }
    print(status_table(state.processes, ready))
    where = (
        f" (supervisor pid {state.supervisor_pid}, log {local.logs_dir / 'supervisor.log'})"
        if detached_pid
        else ""
    )
    print(f"\nKafka {state.bootstrap_servers}; topics {state.topic} / {state.dlq_topic}; Prometheus config "
          f"{state.prometheus_config}{where}. Stop with `python -m knative.local down`.")  # fmt: skip
    return 0 if all(ready.values()) else 1


def cmd_status(args: argparse.Namespace) -> int:
    local, _ = _settings(args)
    return _print_status(local)


def cmd_down(args: argparse.Namespace) -> int:
    from knative.local.state import read_state
    from knative.local.supervisor import stop_recorded

    local, _ = _settings(args)
    state = read_state(local.state_file)
    if state is None:
        print(f"no kfchain stack is running from {local.home}")
        return 0
    killed = stop_recorded(state)
    local.state_file.unlink(missing_ok=True)
    print("stopped" + (f" (killed leftover {', '.join(killed)})" if killed else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from knative.local.demo import main as demo

    return demo()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m knative.local", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (Ctrl-C stops it)")
    up.add_argument("--detach", action="store_true", help="run in the background; return once ready")
    up.add_argument("--manifests", help="folder with the manifests (default knative/, or $KFCHAIN_MANIFESTS)")
    sub.add_parser("status", help="show the running stack")
    sub.add_parser("down", help="stop the running stack")
    sub.add_parser("demo", help="the whole chain end to end (what `make demo` runs); leaves the stack up")
    dispatch = sub.add_parser("dispatch", help="run only the dispatcher")
    dispatch.add_argument("--manifests", help="folder with the manifests (default knative/)")
    dispatch.add_argument("--metrics-port", type=int, help="port of /metrics and /health (default 9464)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    commands = {
        "up": cmd_up,
        "status": cmd_status,
        "down": cmd_down,
        "dispatch": cmd_dispatch,
        "demo": cmd_demo,
    }
    try:
        return commands[args.command](args)
    except (ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
