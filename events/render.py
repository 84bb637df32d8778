"""Terminal rendering of the event log: an aligned table of events and the causal tree of a chain.

Pure functions from events to lines of text; ``events.log`` decides what to show and where.
Colour is applied after padding, so ANSI codes never break the alignment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from events.catalogue import FAILURE_TYPES
from events.errors import InvalidEventError
from events.event import Event

KFCHAIN_TYPE_PREFIX = "io.kfchain."
SHORT_ID = 8  # characters of a chain id shown in the table (and accepted by --chain / chain)

COLUMNS = ("TIME", "TYPE", "SOURCE", "SUBJECT", "CHAIN", "NOTE")
# Minimum widths, so a followed log (whose rows are not known in advance) still lines up.
MIN_WIDTHS = (23, 24, 30, 12, SHORT_ID)


@dataclass(frozen=True)
class LogEntry:
    """One line of the log: a valid CloudEvent, or a record that is not one (with the reason)."""

    time: datetime | None
    event: Event | None = None
    invalid_reason: str | None = None
    where: str = ""  # e.g. "kfchain.events[1]@5" for a record read from Kafka
    position: int = 0  # store sequence number (0 for Kafka records)
    dead_letter: bool = False  # read from the dead-letter topic (``--from-kafka``)


@dataclass(frozen=True)
class Style:
    """ANSI colours (only when writing to a terminal) and box-drawing characters (when encodable)."""

    color: bool = False
    unicode: bool = True

    def _paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def red(self, text: str) -> str:
        return self._paint("31", text)

    def yellow(self, text: str) -> str:
        return self._paint("33", text)

    def green(self, text: str) -> str:
        return self._paint("32", text)

    def dim(self, text: str) -> str:
        return self._paint("2", text)

    def bold(self, text: str) -> str:
        return self._paint("1", text)

    @property
    def marks(self) -> dict[str, str]:
        if self.unicode:
            return {"ok": "●", "failed": "✗", "tee": "├─ ", "last": "└─ ", "pipe": "│  ", "gap": "   "}
        return {"ok": "*", "failed": "x", "tee": "|- ", "last": "`- ", "pipe": "|  ", "gap": "   "}


def short_type(type_: str) -> str:
    """The catalogue's types without the common ``io.kfchain.`` prefix; other types unchanged."""
    return type_[len(KFCHAIN_TYPE_PREFIX) :] if type_.startswith(KFCHAIN_TYPE_PREFIX) else type_


def short_id(value: str | None) -> str:
    """The first 8 characters of an id (what users type back into ``--chain``)."""
    return (value or "")[:SHORT_ID]


def format_time(value: datetime | None) -> str:
    """Local wall-clock time with milliseconds, e.g. ``2024-05-01 14:03:07.412``."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_duration(seconds: float) -> str:
    """A short human duration: ``412 ms``, ``3.20 s``, ``2m 03s``, ``1h 02m``."""
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds < 1:
        text = f"{seconds * 1000:.0f} ms"
    elif seconds < 60:
        text = f"{seconds:.2f} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    else:
        text = f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    return sign + text


def dead_letter_note(event: Event) -> str:
    """``dead-lettered (code 500 from http://...: reason)`` from the Knative dead-letter extensions."""
    ext = event.extensions
    parts = []
    if ext.get("knativeerrorcode"):
        parts.append(f"code {ext['knativeerrorcode']}")
    if ext.get("knativeerrordest"):
        parts.append(f"from {ext['knativeerrordest']}")
    detail = " ".join(parts)
    if event.dead_letter_error:
        detail += f": {event.dead_letter_error}"
    return f"dead-lettered ({detail})" if detail else "dead-lettered"


def event_notes(event: Event) -> list[str]:
    """What a reader should notice about ``event``: failure, dead letter, unknown type, bad payload."""
    notes = []
    if not event.known:
        notes.append("not in catalogue")
    else:
        try:
            event.payload()
        except InvalidEventError as exc:
            notes.append(f"invalid payload: {exc}")
    if event.type in FAILURE_TYPES:
        reason = _failure_reason(event)
        notes.append(f"failed: {reason}" if reason else "failed")
    if event.dead_lettered:
        notes.append(dead_letter_note(event))
    return notes


def _failure_reason(event: Event) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    reason = data.get("error") or data.get("reason") or ""
    return str(reason).splitlines()[0][:80] if reason else ""


# -- table -----------------------------------------------------------------------------------------
def entry_notes(entry: LogEntry) -> list[str]:
    """``event_notes``, plus ``dead-lettered`` for anything read from the dead-letter topic
    (a record there is a dead letter even when nothing stamped it with the Knative extensions)."""
    if entry.event is None:
        notes = [f"invalid: {entry.invalid_reason}"]
    else:
        notes = event_notes(entry.event)
        if entry.event.dead_lettered:
            return notes
    return [*notes, "dead-lettered"] if entry.dead_letter else notes


def table_cells(entry: LogEntry) -> tuple[str, ...]:
    """The plain-text cells of one table row (see ``COLUMNS``)."""
    note = "; ".join(entry_notes(entry))
    if entry.event is None:
        return (format_time(entry.time), "(invalid record)", entry.where, "", "", note)
    event = entry.event
    return (
        format_time(event.time),
        short_type(event.type),
        event.source,
        event.subject or "",
        short_id(event.chainid),
        note,
    )


class Table:
    """An aligned table; widths fit the rows given up front and grow only for rows added later."""

    def __init__(self, style: Style, entries: Sequence[LogEntry] = ()) -> None:
        self.style = style
        widths = list(MIN_WIDTHS)
        for entry in entries:
            for i, cell in enumerate(table_cells(entry)[: len(widths)]):
                widths[i] = max(widths[i], len(cell))
        self.widths = widths

    def header(self) -> str:
        cells = [name.ljust(width) for name, width in zip(COLUMNS, self.widths, strict=False)]
        return self.style.bold("  ".join([*cells, COLUMNS[-1]]).rstrip())

    def row(self, entry: LogEntry) -> str:
        cells = table_cells(entry)
        padded = [cell.ljust(width) for cell, width in zip(cells, self.widths, strict=False)]
        note = cells[-1]
        style = self.style
        if entry.event is None:
            padded[1] = style.red(padded[1])
            note = style.red(note)
        else:
            if entry.event.failed or entry.dead_letter:
                padded[1] = style.red(padded[1])
                note = style.red(note)
            elif not entry.event.known:
                padded[1] = style.yellow(padded[1])
                note = style.yellow(note)
            padded[4] = style.dim(padded[4])
        padded[0] = style.dim(padded[0])
        return "  ".join([*padded, note]).rstrip()


def render_table(entries: Sequence[LogEntry], style: Style) -> list[str]:
    """Header and one aligned row per entry."""
    table = Table(style, entries)
    return [table.header(), *(table.row(e) for e in entries)]


# -- chain tree ------------------------------------------------------------------------------------
@dataclass
class Step:
    """One event of a chain with its dead-lettered copies and the events it caused."""

    event: Event
    dead_letters: list[Event] = field(default_factory=list)
    children: list[Step] = field(default_factory=list)
    took_s: float | None = None  # time since the causing event
    orphan: bool = False  # its causationid names an event that is not in the chain

    @property
    def failed(self) -> bool:
        return self.event.type in FAILURE_TYPES

    @property
    def dead_lettered(self) -> bool:
        return bool(self.dead_letters) or self.event.dead_lettered


def build_tree(events: Iterable[Event], dead_letters: Iterable[Event] = ()) -> list[Step]:
    """Roots of the causal tree (via ``causationid``), children in time order.

    A dead-lettered copy of an event (same id, stamped by the dead-letter path, or one of
    ``dead_letters``: events read from the dead-letter topic) is folded into the step of the
    original, so the tree shows one step marked as dead-lettered.
    """
    tagged = [(e, e.dead_lettered) for e in events] + [(e, True) for e in dead_letters]
    steps: dict[str, Step] = {}
    originals: set[str] = set()  # ids whose step holds the original, not a dead-lettered copy
    for event, dead in sorted(tagged, key=lambda pair: pair[0].time):
        step = steps.get(event.id)
        if step is None:
            steps[event.id] = Step(event, dead_letters=[event] if dead else [])
        elif dead:
            step.dead_letters.append(event)
        elif event.id not in originals:  # the original arrived after its dead-lettered copy
            step.event = event
        if not dead:
            originals.add(event.id)
    roots: list[Step] = []
    for step in steps.values():
        cause = steps.get(step.event.causationid or "")
        if cause is None or cause is step:
            step.orphan = step.event.causationid is not None
            roots.append(step)
        else:
            step.took_s = (step.event.time - cause.event.time).total_seconds()
            cause.children.append(step)
    return roots


def render_chain(
    chainid: str, events: Sequence[Event], style: Style, dead_letters: Sequence[Event] = ()
) -> list[str]:
    """The causal tree of one chain: one line per step with the time it took, and the total.

    ``dead_letters`` are events read from the dead-letter topic (see ``build_tree``).
    """
    roots = build_tree(events, dead_letters)
    marks = style.marks
    lines: list[tuple[str, Step]] = []  # (tree prefix + mark, step)
    seen: set[int] = set()

    def walk(step: Step, prefix: str, connector: str) -> None:
        if id(step) in seen:  # a causation cycle cannot come from our helpers, but never loop forever
            return
        seen.add(id(step))
        lines.append((prefix + connector, step))
        child_prefix = prefix + (
            marks["pipe"] if connector == marks["tee"] else marks["gap"] if connector else ""
        )
        for i, child in enumerate(step.children):
            walk(child, child_prefix, marks["last"] if i == len(step.children) - 1 else marks["tee"])

    for root in roots:
        walk(root, "", "")

    times = [e.time for e in [*events, *dead_letters]]
    total = (max(times) - min(times)).total_seconds() if times else 0.0
    failed = sum(1 for _, s in lines if s.failed)
    dead = sum(1 for _, s in lines if s.dead_lettered)
    summary = [f"{len(lines)} steps", f"total {format_duration(total)}"]
    if failed:
        summary.append(f"{failed} failed")
    if dead:
        summary.append(f"{dead} dead-lettered")
    out = [style.bold(f"chain {chainid}") + "  " + ", ".join(summary)]

    labels = []
    for tree, step in lines:
        mark = marks["failed"] if step.failed or step.dead_lettered else marks["ok"]
        labels.append(f"{tree}{mark} {short_type(step.event.type)}")
    label_w = max((len(label) for label in labels), default=0)
    source_w = max((len(s.event.source) for _, s in lines), default=0)
    took = [("+" + format_duration(s.took_s)) if s.took_s is not None else "" for _, s in lines]
    took_w = max((len(t) for t in took), default=0)
    for label, (_, step), step_took in zip(labels, lines, took, strict=True):
        notes = [n for n in event_notes(step.event) if not n.startswith("dead-lettered")]
        notes += [dead_letter_note(d) for d in step.dead_letters]
        if step.orphan:
            notes.append(f"cause {short_id(step.event.causationid)} not recorded")
        painted = label.ljust(label_w)
        if step.failed or step.dead_lettered:
            painted = style.red(painted)
        elif not step.event.known:
            painted = style.yellow(painted)
        row = [
            painted,
            step.event.source.ljust(source_w),
            step_took.rjust(took_w),
            style.dim(format_time(step.event.time)),
        ]
        note = "; ".join(notes)
        if note:
            row.append(style.red(note) if step.failed or step.dead_lettered else style.yellow(note))
        out.append("  ".join(row).rstrip())
    out.append(f"total {format_duration(total)} from {format_time(min(times) if times else None)}")
    return out
