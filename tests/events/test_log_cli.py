"""``python -m events.log``: what a user sees for each option, and the exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.broker import free_port
from events.codec import KafkaRecord, from_json, to_json
from events.event import Event
from events.kafka import Publisher
from events.log import EXIT_BROKER, EXIT_NOTHING, EXIT_OK, EXIT_USAGE, Filters, KafkaLog, LogSettings, main
from events.render import LogEntry, Style, Table, format_time
from events.settings import KafkaSettings
from events.store import EventStore
from tests.events.conftest import Chain, make_chain, training_succeeded

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> LogSettings:
    unreachable = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", timeout_s=1.0)
    return LogSettings(store_path=home / "events.db", kafka=unreachable)


@pytest.fixture
def chain(settings: LogSettings) -> Iterator[Chain]:
    """A recorded chain plus an old training run and an event of a type the catalogue does not know."""
    store = EventStore(settings.store_path)
    recorded = make_chain()
    old = training_succeeded(run_id="old", version="v1", at=datetime.now(UTC) - timedelta(hours=3))
    foreign = Event(
        id="f-1",
        source="/elsewhere",
        type="com.example.audit",
        data={"who": "me"},
        chainid="0123abcd-foreign",
        time=recorded.training.time + timedelta(seconds=10),
    )
    for event in [old, *recorded.events(), foreign]:
        store.append(event)
    store.close()
    yield recorded


def run_log(capsys: pytest.CaptureFixture[str], settings: LogSettings, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def rows(out: str) -> list[str]:
    return out.rstrip("\n").splitlines()[1:]


# -- the table -------------------------------------------------------------------------------------
def test_default_is_an_aligned_table_newest_last(capsys, settings, chain) -> None:
    code, out, err = run_log(capsys, settings)
    assert code == EXIT_OK and err == ""
    header, *lines = out.rstrip("\n").splitlines()
    assert header.split() == ["TIME", "TYPE", "SOURCE", "SUBJECT", "CHAIN", "NOTE"]
    assert len(lines) == 7
    assert "\x1b[" not in out  # not a terminal: no colour
    first = lines[1]  # lines[0] is the 3-hour-old run
    assert first.startswith(format_time(chain.training.time))
    assert "pipeline.run.succeeded" in first and "/kfchain/pipelines/training" in first
    assert "iris/v3" in first and chain.id[:8] in first and chain.id[:9] not in first
    # every row starts each column at the same offset as its header
    source, subject, chain_at = (header.index(c) for c in ("SOURCE", "SUBJECT", "CHAIN"))
    assert all(line[source] == "/" and line[source - 2 : source] == "  " for line in lines)
    assert all(line[subject:].startswith(("iris/v", " ")) and line[subject - 1] == " " for line in lines)
    assert all(re.fullmatch(r"[0-9a-f]{8}", line[chain_at : chain_at + 8]) for line in lines)
    times = [line[:23] for line in lines]
    assert times == sorted(times)


def test_failures_dead_letters_and_unknown_types_are_marked(capsys, settings, chain) -> None:
    _, out, _ = run_log(capsys, settings)
    lines = rows(out)
    assert "com.example.audit" in lines[3] and "not in catalogue" in lines[3]
    assert "dead-lettered" not in lines[4]  # the original delivery of the selection event ...
    assert (
        "dead-lettered (code 503 from http://deployer.kfchain.svc.cluster.local: deployer unavailable)"
        in lines[5]
    )
    assert "model.rollout.failed" in lines[6] and "failed: predictor not ready" in lines[6]


def test_colour_keeps_the_columns_aligned(chain) -> None:
    entries = [LogEntry(time=e.time, event=e) for e in chain.events()]
    plain, coloured = Table(Style(color=False), entries), Table(Style(color=True), entries)
    painted = [coloured.row(e) for e in entries]
    assert any("\x1b[31m" in line for line in painted)  # the failed rows are red
    assert [ANSI.sub("", line) for line in painted] == [plain.row(e) for e in entries]


@pytest.mark.parametrize(
    ("prefix", "types"),
    [
        ("model", {"model.rollout.failed"}),
        ("pipeline.run.su", {"pipeline.run.succeeded", "pipeline.run.submitted"}),
        ("io.kfchain.pipeline.run.sub", {"pipeline.run.submitted"}),
        ("com.example", {"com.example.audit"}),
    ],
)
def test_type_filter_is_a_prefix(capsys, settings, chain, prefix: str, types: set[str]) -> None:
    code, out, _ = run_log(capsys, settings, "--type", prefix)
    assert code == EXIT_OK
    assert {line.split()[2] for line in rows(out)} == types


def test_chain_filter_takes_the_short_id(capsys, settings, chain) -> None:
    code, out, _ = run_log(capsys, settings, "--chain", chain.id[:8], "--json")
    assert code == EXIT_OK
    assert [from_json(line) for line in out.splitlines()] == chain.events()


def test_subject_filter(capsys, settings, chain) -> None:
    code, out, _ = run_log(capsys, settings, "--subject", "iris/v1")
    assert code == EXIT_OK
    [line] = rows(out)
    assert "iris/v1" in line


def test_since_takes_a_duration_or_an_iso_time(capsys, settings, chain) -> None:
    _, out, _ = run_log(capsys, settings, "--since", "1h")
    assert len(rows(out)) == 6 and "iris/v1" not in out  # the 3-hour-old run is left out
    _, out, _ = run_log(capsys, settings, "--since", "4h")
    assert len(rows(out)) == 7
    cutoff = (chain.selection.time - timedelta(seconds=1)).isoformat()
    _, out, _ = run_log(capsys, settings, "--since", cutoff)
    assert [line.split()[2] for line in rows(out)] == ["pipeline.run.succeeded"] * 2 + [
        "model.rollout.failed"
    ]


@pytest.mark.parametrize("bad", ["10x", "yesterday", "2024-13-45"])
def test_bad_since_is_a_one_line_usage_error(capsys, settings, chain, bad: str) -> None:
    code, out, err = run_log(capsys, settings, "--since", bad)
    assert code == EXIT_USAGE and out == ""
    [line] = err.splitlines()
    assert repr(bad) in line and "10m" in line


def test_limit_keeps_the_newest(capsys, settings, chain) -> None:
    _, out, _ = run_log(capsys, settings, "--limit", "2", "--json")
    assert [from_json(line) for line in out.splitlines()] == [
        chain.selection_dead_letter,
        chain.rollout_failed,
    ]
    code, _, err = run_log(capsys, settings, "--limit", "-3")
    assert code == EXIT_USAGE and "'-3'" in err


def test_json_prints_one_structured_cloudevent_per_line(capsys, settings, chain) -> None:
    code, out, err = run_log(capsys, settings, "--json", "--limit", "0")
    assert code == EXIT_OK and err == ""
    lines = out.splitlines()
    assert len(lines) == 7
    for line in lines:
        assert json.loads(line)["specversion"] == "1.0"
    assert to_json(chain.selection_dead_letter) in lines
    assert json.loads(lines[5])["knativeerrorcode"] == "503"


def test_unknown_option_is_a_one_line_usage_error(capsys, settings, chain) -> None:
    code, _, err = run_log(capsys, settings, "--colour")
    assert code == EXIT_USAGE
    assert len(err.splitlines()) == 1 and "--colour" in err


# -- nothing to show -------------------------------------------------------------------------------
def test_missing_store_says_so_in_one_line(capsys, settings) -> None:
    code, out, err = run_log(capsys, settings)
    assert code == EXIT_NOTHING and out == ""
    [line] = err.splitlines()
    assert str(settings.store_path) in line and "KFCHAIN_HOME" in line


def test_empty_store_says_so_in_one_line(capsys, settings) -> None:
    EventStore(settings.store_path).close()
    code, out, err = run_log(capsys, settings)
    assert code == EXIT_NOTHING and out == ""
    assert err.splitlines() == [f"no events in the event store at {settings.store_path} yet"]


def test_filter_without_match_exits_1(capsys, settings, chain) -> None:
    code, out, err = run_log(capsys, settings, "--subject", "iris/v99")
    assert code == EXIT_NOTHING and out == ""
    assert "--subject iris/v99" in err and len(err.splitlines()) == 1


# -- the chain tree --------------------------------------------------------------------------------
def test_chain_tree_shows_causes_step_times_and_marks_failures(capsys, settings, chain) -> None:
    code, out, err = run_log(capsys, settings, "chain", chain.id[:8])
    assert code == EXIT_OK and err == ""
    title, training, submitted, selection, rollout, total = out.splitlines()
    assert title.startswith(f"chain {chain.id}") and "4 steps" in title and "total 2m 10s" in title
    assert "1 failed" in title and "1 dead-lettered" in title
    assert training.startswith("● pipeline.run.succeeded")
    assert submitted.startswith("└─ ● pipeline.run.submitted") and "+400 ms" in submitted
    assert selection.startswith("   └─ ✗ pipeline.run.succeeded") and "+1m 34s" in selection
    assert "dead-lettered (code 503 from http://deployer.kfchain.svc.cluster.local" in selection
    assert rollout.startswith("      └─ ✗ model.rollout.failed") and "+35.00 s" in rollout
    assert "failed: predictor not ready" in rollout
    assert total.startswith("total 2m 10s")
    # the source column lines up across the tree
    assert len({line.index("/kfchain/") for line in (training, submitted, selection, rollout)}) == 1


def test_chain_tree_shows_siblings_as_branches(capsys, settings, chain) -> None:
    from events.catalogue import ModelDeployed
    from events.event import caused_by

    store = EventStore(settings.store_path)
    retry = caused_by(
        chain.selection,
        ModelDeployed(
            model_name="iris",
            model_version="v3",
            k=3,
            accuracy=0.93,
            endpoint="http://x",
            traffic_percent=100,
        ),
        source="/kfchain/services/deployer",
    )
    store.append(retry)
    store.close()
    _, out, _ = run_log(capsys, settings, "chain", chain.id)
    lines = out.splitlines()
    assert lines[4].startswith("      ├─ ✗ model.rollout.failed")
    assert lines[5].startswith("      └─ ● model.deployed")


def test_unknown_chain_says_so_in_one_line(capsys, settings, chain) -> None:
    code, out, err = run_log(capsys, settings, "chain", "ffffffff")
    assert code == EXIT_NOTHING and out == ""
    [line] = err.splitlines()
    assert "'ffffffff'" in line and chain.id[:8] in line  # it suggests the recent chains


def test_unknown_command_is_a_usage_error(capsys, settings, chain) -> None:
    code, _, err = run_log(capsys, settings, "tree", "x")
    assert code == EXIT_USAGE and "chain ID" in err


# -- --follow --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _following(env: dict[str, str], *argv: str) -> Iterator[queue.Queue[str]]:
    """``python -m events.log <argv>`` running: yields a queue of the lines it prints; at the end it
    gets SIGTERM and must exit 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "events.log", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield lines
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(10)
    assert code == EXIT_OK


def test_follow_prints_new_events_as_they_are_recorded(settings, chain, home) -> None:
    env = {**os.environ, "KFCHAIN_HOME": str(home)}
    with _following(env, "--follow", "--json", "--type", "pipeline.run.succeeded", "--limit", "1") as lines:
        first = from_json(lines.get(timeout=20))
        assert first == chain.selection_dead_letter  # the newest matching event, then it waits
        store = EventStore(settings.store_path)
        store.append(make_chain().rollout_failed)  # does not match --type: never printed
        later = training_succeeded(run_id="later")
        store.append(later)
        store.close()
        assert from_json(lines.get(timeout=10)) == later
        with pytest.raises(queue.Empty):
            lines.get(timeout=1.0)


# -- --from-kafka ----------------------------------------------------------------------------------
BROKEN = KafkaRecord(
    headers=(("ce_specversion", b"1.0"), ("ce_source", b"/broken"), ("ce_type", b"com.example.broken")),
    key=None,
    value=b"{}",
)


@pytest.fixture
def on_kafka(kafka_settings: KafkaSettings, settings: LogSettings) -> tuple[LogSettings, Chain]:
    """The chain (its dead-lettered copy on the dead-letter topic, as the dispatcher writes it), a
    foreign event and an invalid record (no ce_id) on the topic; nothing in the store."""
    recorded = make_chain()
    broken = BROKEN
    with Publisher(kafka_settings) as publisher:
        for event in recorded.events():
            topic = kafka_settings.dlq_topic if event.dead_lettered else kafka_settings.topic
            publisher.publish(event, topic)
        publisher.publish(Event(id="f-1", source="/elsewhere", type="com.example.audit", data={}))
        publisher.publish_record(broken, kafka_settings.topic)
    return LogSettings(store_path=settings.store_path, kafka=kafka_settings), recorded


def test_from_kafka_shows_invalid_records_with_the_reason(capsys, on_kafka) -> None:
    settings, recorded = on_kafka
    code, out, err = run_log(capsys, settings, "--from-kafka")
    assert code == EXIT_OK, err
    lines = rows(out)
    assert len(lines) == 7
    [invalid] = [line for line in lines if "(invalid record)" in line]
    assert f"{settings.kafka.topic}[" in invalid
    assert "invalid: id: is a required CloudEvents attribute (header ce_id is missing)" in invalid
    assert any("com.example.audit" in line and "not in catalogue" in line for line in lines)
    assert sum("dead-lettered" in line for line in lines) == 1


def test_from_kafka_shows_dead_letters_in_time_order_marked_with_code_and_destination(
    capsys, on_kafka
) -> None:
    settings, recorded = on_kafka
    code, out, _ = run_log(capsys, settings, "--from-kafka", "--chain", recorded.id[:8])
    assert code == EXIT_OK
    lines = rows(out)
    assert [line.split()[2] for line in lines] == [
        "pipeline.run.succeeded",
        "pipeline.run.submitted",
        "pipeline.run.succeeded",
        "pipeline.run.succeeded",  # the dead-lettered copy, read from the dead-letter topic
        "model.rollout.failed",
    ]
    assert "dead-lettered" not in lines[2]
    assert (
        "dead-lettered (code 503 from http://deployer.kfchain.svc.cluster.local: deployer unavailable)"
        in lines[3]
    )


def test_from_kafka_marks_anything_on_the_dead_letter_topic(capsys, on_kafka) -> None:
    """A dead letter without the Knative extensions, and an invalid record, both on the DLQ topic."""
    settings, _ = on_kafka
    unstamped = training_succeeded(run_id="unstamped")
    with Publisher(settings.kafka) as publisher:
        publisher.publish(unstamped, settings.kafka.dlq_topic)
        publisher.publish_record(BROKEN, settings.kafka.dlq_topic)
    code, out, _ = run_log(capsys, settings, "--from-kafka", "--since", "1m")
    assert code == EXIT_OK
    by_source = {line.split()[3]: line for line in rows(out)}
    assert by_source["/kfchain/pipelines/training"].endswith("dead-lettered")
    [invalid] = [line for line in rows(out) if f"{settings.kafka.dlq_topic}[" in line]
    assert "(invalid record)" in invalid
    assert invalid.endswith(
        "invalid: id: is a required CloudEvents attribute (header ce_id is missing); dead-lettered"
    )
    # in the tree, the dead letter is the step (there is no original): marked like a stamped one
    _, out, _ = run_log(capsys, settings, "--from-kafka", "chain", unstamped.chainid or "")
    title, step, _total = out.splitlines()
    assert "1 dead-lettered" in title
    assert step.startswith("✗ pipeline.run.succeeded") and step.endswith("dead-lettered")


def test_from_kafka_dead_letters_are_red_in_a_terminal(on_kafka) -> None:
    settings, recorded = on_kafka
    entries = KafkaLog(settings.kafka).entries(Filters(chain=recorded.id, limit=None))
    [dead] = [e for e in entries if e.dead_letter]
    assert dead.event == recorded.selection_dead_letter
    assert dead.where.startswith(f"{settings.kafka.dlq_topic}[")
    assert "\x1b[31mpipeline.run.succeeded" in Table(Style(color=True), entries).row(dead)


def test_from_kafka_json_keeps_stdout_parseable(capsys, on_kafka) -> None:
    settings, recorded = on_kafka
    code, out, err = run_log(capsys, settings, "--from-kafka", "--json")
    assert code == EXIT_OK
    events = [from_json(line) for line in out.splitlines()]
    assert len(events) == 6 and recorded.selection_dead_letter in events
    [note] = err.splitlines()
    assert note.startswith(f"invalid record {settings.kafka.topic}[") and "ce_id" in note


def test_from_kafka_chain_tree(capsys, on_kafka) -> None:
    settings, recorded = on_kafka
    code, out, _ = run_log(capsys, settings, "--from-kafka", "chain", recorded.id[:8])
    assert code == EXIT_OK
    assert "4 steps" in out and "1 dead-lettered" in out and "+1m 34s" in out
    [selection] = [line for line in out.splitlines() if "/kfchain/pipelines/model-selection" in line]
    assert selection.lstrip().startswith("└─ ✗ pipeline.run.succeeded")  # the original's step, folded
    assert "dead-lettered (code 503 from http://deployer.kfchain.svc.cluster.local" in selection


def test_from_kafka_filters_leave_invalid_records_out(capsys, on_kafka) -> None:
    settings, _ = on_kafka
    code, out, _ = run_log(capsys, settings, "--from-kafka", "--type", "model")
    assert code == EXIT_OK
    assert [line.split()[2] for line in rows(out)] == ["model.rollout.failed"]


def test_from_kafka_follow_streams_new_records(on_kafka) -> None:
    settings, _ = on_kafka
    source = KafkaLog(settings.kafka)
    shown = source.entries(Filters(limit=None))
    stop = threading.Event()
    seen: queue.Queue[LogEntry] = queue.Queue()

    def follow() -> None:
        for entry in source.follow(Filters(), shown, stop):
            seen.put(entry)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    later = training_succeeded(run_id="later")
    time.sleep(0.5)
    with Publisher(settings.kafka) as publisher:
        publisher.publish(later)
    try:
        assert seen.get(timeout=15).event == later  # the 7 records read before are not repeated
    finally:
        stop.set()
        follower.join(10)
    assert not follower.is_alive()


def test_from_kafka_follow_prints_a_new_dead_letter(on_kafka, home) -> None:
    settings, recorded = on_kafka
    kafka = settings.kafka
    env = {
        **os.environ,
        "KFCHAIN_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KFCHAIN_TOPIC": kafka.topic,
        "KFCHAIN_DLQ_TOPIC": kafka.dlq_topic,
    }
    with _following(env, "--from-kafka", "--follow", "--type", "model.rollout", "--limit", "1") as lines:
        assert lines.get(timeout=20).split()[:1] == ["TIME"]
        assert "model.rollout.failed" in lines.get(timeout=5)
        with pytest.raises(queue.Empty):
            lines.get(timeout=1.0)  # now it waits
        dead = recorded.rollout_failed.with_extensions(
            knativeerrordest="http://recorder.kfchain.svc.cluster.local", knativeerrorcode="-1"
        )
        with Publisher(kafka) as publisher:
            publisher.publish(dead, kafka.dlq_topic)
        line = lines.get(timeout=15)
        assert "model.rollout.failed" in line
        assert line.endswith("dead-lettered (code -1 from http://recorder.kfchain.svc.cluster.local)")
        with pytest.raises(queue.Empty):
            lines.get(timeout=1.0)


def test_from_kafka_empty_topic_exits_1(capsys, kafka_settings, settings) -> None:
    code, out, err = run_log(capsys, LogSettings(settings.store_path, kafka_settings), "--from-kafka")
    assert code == EXIT_NOTHING and out == ""
    assert err.splitlines() == [
        f"no events in topics {kafka_settings.topic} and {kafka_settings.dlq_topic} "
        f"at {kafka_settings.bootstrap_servers} yet"
    ]


def test_from_kafka_without_a_broker_exits_3_naming_the_address(capsys, settings) -> None:
    code, out, err = run_log(capsys, settings, "--from-kafka")
    assert code == EXIT_BROKER and out == ""
    [line] = err.splitlines()
    assert settings.kafka.bootstrap_servers in line and "python -m events.broker" in line


def test_module_runs_with_kfchain_home_from_the_environment(chain, home) -> None:
    env = {**os.environ, "KFCHAIN_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "events.log", "--limit", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert len(result.stdout.splitlines()) == 4
