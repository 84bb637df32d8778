"""``make demo``: the whole chain end to end on the embedded defaults.

Starts the local stack in the background, runs the training pipeline, follows the chain in the
event store until the model is deployed (or the rollout failed), prints the chain and one
prediction from the served model, and leaves the stack running with its URLs printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from events.catalogue import MODEL_DEPLOYED, MODEL_ROLLOUT_FAILED, PIPELINE_RUN_FAILED, PIPELINE_RUN_SUCCEEDED
from events.settings import kfchain_home
from events.store import EventStore

VERSICOLOR = [6.4, 3.2, 4.5, 1.5]
CHAIN_TIMEOUT_S = float(os.environ.get("KFCHAIN_DEMO_TIMEOUT", "180"))


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def _run(*args: str) -> int:
    return subprocess.call(_python(*args))


def _latest_training_event(store: EventStore, after_seq: int):  # noqa: ANN202
    for stored in reversed(store.after(after_seq)):
        event = stored.event
        if event.type in (PIPELINE_RUN_SUCCEEDED, PIPELINE_RUN_FAILED) and event.pipeline == "training":
            return event
    return None


def _follow_chain(store: EventStore, chain_id: str, timeout_s: float) -> str | None:
    """Print each event of the chain as it lands; return the final type, or None on timeout."""
    seen: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for stored in store.chain(chain_id):
            event = stored.event
            key = (event.source, event.id, event.extensions.get("knativeerrordest", ""))
            if key in seen:
                continue
            seen.add(key)
            mark = " (dead-lettered)" if event.dead_lettered else ""
            print(
                f"    {event.time:%H:%M:%S.%f}"[:-3] + f"  {event.type}  from {event.source}{mark}",
                flush=True,
            )
            if event.type in (MODEL_DEPLOYED, MODEL_ROLLOUT_FAILED, PIPELINE_RUN_FAILED):
                return event.type
        time.sleep(0.3)
    return None


def _predict(url: str, model: str) -> dict:
    body = json.dumps({"instances": [VERSICOLOR], "probabilities": True}).encode()
    request = urllib.request.Request(
        f"{url}/v1/models/{model}:predict", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def main() -> int:
    home = kfchain_home()
    predictor = os.environ.get("KFCHAIN_PREDICTOR_URL", "http://127.0.0.1:8080")
    frontend = os.environ.get("KFCHAIN_FRONTEND_URL", "http://127.0.0.1:8081")
    model = os.environ.get("KFCHAIN_MODEL_NAME", "iris")

    _say("starting the local stack (broker, dispatcher, selector, deployer, recorder, predictor, frontend)")
    if _run("knative.local", "up", "--detach") != 0:
        print("error: the local stack did not start; see the logs under", home / "logs", file=sys.stderr)
        return 1

    store = EventStore(Path(home) / "events.db")
    start_seq = store.last_seq()
    _say("running the training pipeline (python -m pipelines.submit training --wait)")
    if _run("pipelines.submit", "training", "--wait") != 0:
        print("error: the training run failed (its run.failed event is in the log)", file=sys.stderr)
        return 1

    _say("waiting for the chain: training done -> selector -> selection run -> deployer")
    deadline = time.monotonic() + 30
    training = None
    while training is None and time.monotonic() < deadline:
        training = _latest_training_event(store, start_seq)
        time.sleep(0.2)
    if training is None:
        print(
            "error: the training run's event did not reach the event log within 30 s "
            "(is the dispatcher running? `python -m knative.local status`)",
            file=sys.stderr,
        )
        return 1
    chain_id = training.chainid or training.id
    outcome = _follow_chain(store, chain_id, CHAIN_TIMEOUT_S)
    if outcome is None:
        print(
            f"error: chain {chain_id[:8]} did not finish within {CHAIN_TIMEOUT_S:g} s; "
            f"inspect it with `python -m events.log chain {chain_id}`",
            file=sys.stderr,
        )
        return 1

    _say(f"the chain in the event log (python -m events.log chain {chain_id[:8]})")
    _run("events.log", "chain", chain_id)
    if outcome != MODEL_DEPLOYED:
        print(f"error: the chain ended with {outcome}", file=sys.stderr)
        return 1

    _say(f"one prediction from the served model: a versicolor flower {VERSICOLOR}")
    try:
        answer = _predict(predictor, model)
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: the predictor at {predictor} did not answer: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))

    _say("the stack keeps running:")
    print(f"    predict page      {frontend}/predict")
    print(f"    event timeline    {frontend}/events/{chain_id}")
    print(f"    predictor (V1)    {predictor}/v1/models/{model}:predict")
    print("    status            python -m knative.local status")
    print("    event log         python -m events.log")
    print("    stop it           make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
