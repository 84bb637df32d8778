"""HTML routes: model status, the predict form and the live event timeline (server-sent events)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
from quart import Blueprint, Response, abort, render_template, request, stream_with_context

from frontend.csrf import FIELD as CSRF_FIELD
from frontend.csrf import csrf_valid
from frontend.flowers import EXAMPLES, FEATURES, SPECIES, InvalidInputError, parse_form
from frontend.predictor import PredictorError
from frontend.state import state
from frontend.timeline import build_chain, chain_key, one_chain, recent_chains, serving_model

pages = Blueprint("pages", __name__)

_SSE_HEARTBEAT_S = 15.0
_TIMELINE_CHAINS = 20


@pages.get("/")
async def index() -> str:
    """The model now serving (from the event log), the predictor's health and recent chains."""
    app_state = state()
    store = app_state.events()
    serving, health, chains = await asyncio.gather(
        asyncio.to_thread(serving_model, store),
        app_state.predictor.health(),
        asyncio.to_thread(recent_chains, store, 5),
    )
    return await render_template(
        "index.html",
        serving=serving,
        health=health,
        chains=chains,
        settings=app_state.settings,
    )


def _form_values() -> dict[str, str]:
    example = EXAMPLES.get(request.args.get("example", ""))
    if example:
        return {f.name: f"{v:g}" for f, v in zip(FEATURES, example, strict=True)}
    return {f.name: request.args.get(f.name, "")[:20] for f in FEATURES}


async def _render_predict(status: int = 200, **context: object) -> tuple[str, int]:
    context.setdefault("values", _form_values())
    context.setdefault("errors", {})
    html = await render_template(
        "predict.html", features=FEATURES, examples=EXAMPLES, species=SPECIES, **context
    )
    return html, status


@pages.get("/predict")
async def predict_form() -> tuple[str, int]:
    """The form; ``?example=versicolor`` or ``?sepal_length=...`` fills it in."""
    return await _render_predict()


@pages.post("/predict")
async def predict_submit() -> tuple[str, int]:
    """Validate the form, ask the predictor and show species, probabilities and model version."""
    form = await request.form
    values = {f.name: form.get(f.name, "")[:20] for f in FEATURES}
    if not csrf_valid(form.get(CSRF_FIELD)):
        return await _render_predict(
            400,
            values=values,
            problem="The form expired or did not come from this page. Check the values and submit again.",
        )
    try:
        row = parse_form(form)
    except InvalidInputError as exc:
        return await _render_predict(400, values=values, errors=exc.errors)
    app_state = state()
    try:
        prediction = await app_state.predictor.predict([row])
    except PredictorError as exc:
        app_state.metrics.upstream_errors.labels(exc.reason).inc()
        return await _render_predict(exc.status, values=values, problem=exc.message)
    probabilities = None
    if prediction.probabilities:
        probabilities = list(zip(SPECIES, prediction.probabilities[0], strict=False))
    return await _render_predict(
        200,
        values=values,
        prediction=prediction,
        species_name=prediction.species[0],
        probabilities=probabilities,
    )


@pages.get("/events")
async def events_page() -> str:
    """The most recent chains, rendered here and kept current by ``/events/stream``."""
    store = state().events()
    last_seq, chains = await asyncio.gather(
        asyncio.to_thread(store.last_seq), asyncio.to_thread(recent_chains, store, _TIMELINE_CHAINS)
    )
    return await render_template("events.html", chains=chains, last_seq=last_seq, chain_filter="")


@pages.get("/events/<chainid>")
async def chain_page(chainid: str) -> str:
    """One chain; accepts the short id the timeline shows."""
    if len(chainid) > 100:
        abort(404)
    store = state().events()
    last_seq = await asyncio.to_thread(store.last_seq)
    chain = await asyncio.to_thread(one_chain, store, chainid)
    if chain is None:
        abort(404, f"No chain {chainid!r} in the event log. The events page lists the recent ones.")
    return await render_template("events.html", chains=[chain], last_seq=last_seq, chain_filter=chain.chainid)


def _start_seq() -> int | None:
    for raw in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        if raw and raw.isdigit():
            return int(raw)
    return None


@pages.get("/events/stream")
async def events_stream() -> Response:
    """Server-sent events: each new event re-renders its chain; ``event: chain`` carries
    ``{"chainid", "seq", "html"}``. ``?after=<seq>`` (or ``Last-Event-ID``) resumes, ``?chain=<id>`` filters."""
    app_state = state()
    store = app_state.events()
    only_chain = request.args.get("chain", "")[:100] or None
    start = _start_seq()
    seq = start if start is not None else await asyncio.to_thread(store.last_seq)
    poll_s = app_state.settings.sse_poll_s

    @stream_with_context
    async def stream() -> AsyncIterator[bytes]:
        nonlocal seq
        yield b"retry: 2000\n\n"
        quiet_since = time.monotonic()
        while True:
            new = await asyncio.to_thread(store.after, seq)
            if new:
                seq = new[-1].seq
                affected = list(dict.fromkeys(chain_key(r.event) for r in new))
                for chainid in affected:
                    if only_chain and chainid != only_chain:
                        continue
                    chain = build_chain(chainid, await asyncio.to_thread(store.chain, chainid))
                    if not chain.steps:
                        continue
                    html = await render_template("_chain.html", chain=chain)
                    payload = orjson.dumps({"chainid": chainid, "seq": seq, "html": html})
                    yield b"id: %d\nevent: chain\ndata: %s\n\n" % (seq, payload)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > _SSE_HEARTBEAT_S:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(poll_s)

    response = Response(
        stream(),
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.timeout = None  # a stream lives as long as the browser tab
    return response
