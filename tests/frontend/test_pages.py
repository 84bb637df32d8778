"""The HTML pages through Quart's test client: model status, predict form, event timeline, errors."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import orjson

from events.store import EventStore
from tests.frontend.chains import HOSTILE, deployed_chain

VERSICOLOR = {"sepal_length": "6.0", "sepal_width": "2.7", "petal_length": "4.5", "petal_width": "1.4"}


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the form has no CSRF token"
    return match.group(1)


async def _post_predict(client, values: dict[str, str]):
    form_page = await (await client.get("/predict")).get_data(as_text=True)
    return await client.post("/predict", form={**values, "csrf_token": _csrf(form_page)})


async def test_index_shows_the_model_now_serving_and_predictor_health(frontend_client, filled_store) -> None:
    async with frontend_client() as client:
        response = await client.get("/")
        html = await response.get_data(as_text=True)
    assert response.status_code == 200
    serving = html[html.index('id="serving"') : html.index('id="predictor"')]
    assert "iris" in serving and "v2" in serving
    assert "<dd>5</dd>" in serving  # K
    assert "96.7%" in serving
    assert f'/events/{filled_store.deployed_chain}"' in serving
    assert '<span class="badge ok">ready</span>' in html


async def test_index_says_no_model_yet_on_an_empty_log(frontend_client, tmp_path) -> None:
    async with frontend_client(events_db=tmp_path / "empty.db") as client:
        html = await (await client.get("/")).get_data(as_text=True)
    assert "No model deployed yet" in html
    assert "python -m pipelines.submit training" in html


async def test_index_still_answers_when_the_predictor_is_down(frontend_client, down_predictor) -> None:
    async with frontend_client(predictor_url=down_predictor) as client:
        response = await client.get("/")
        html = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert "unreachable" in html
    assert "v2" in html  # what the log says still shows


async def test_predict_form_has_labelled_fields_ranges_and_examples(frontend_client) -> None:
    async with frontend_client() as client:
        html = await (await client.get("/predict")).get_data(as_text=True)
        filled = await (await client.get("/predict?example=versicolor")).get_data(as_text=True)
    for name, label in [("sepal_length", "Sepal length"), ("petal_width", "Petal width")]:
        assert f'<label for="{name}">{label} <span class="unit">(cm)</span></label>' in html
    assert 'min="0.05" max="5.0"' in html
    assert "?example=versicolor" in html
    assert 'name="petal_length" value="4.5"' in filled


async def test_predict_shows_species_probabilities_and_model_version(frontend_client) -> None:
    async with frontend_client() as client:
        response = await _post_predict(client, VERSICOLOR)
        html = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'It is <em class="species">versicolor</em>' in html
    assert '<strong class="model-version">v2</strong>' in html
    assert 'width="80.0%"' in html and ">80%<" in html  # the versicolor bar
    assert 'name="petal_length" value="4.5"' in html  # the form keeps the values


async def test_predict_with_the_stock_runtime_says_version_unknown(frontend_client, stock_predictor) -> None:
    async with frontend_client(predictor_url=stock_predictor) as client:
        html = await (await _post_predict(client, VERSICOLOR)).get_data(as_text=True)
    assert 'It is <em class="species">versicolor</em>' in html
    assert "version unknown" in html
    assert "reports no probabilities" in html


async def test_validation_errors_appear_next_to_the_field(frontend_client, kfchain_predictor) -> None:
    _, fake = kfchain_predictor
    sent_before = len(fake.requests)
    async with frontend_client() as client:
        response = await _post_predict(client, {**VERSICOLOR, "petal_width": "12", "sepal_width": "wide"})
        html = await response.get_data(as_text=True)
    assert response.status_code == 400
    petal_width = html[html.index('<div class="field invalid">\n      <label for="petal_width">') :]
    assert "Petal width must be between 0.05 and 5 cm" in petal_width[: petal_width.index("</div>")]
    assert 'id="sepal_width-error">Sepal width must be a number of centimetres' in html
    assert 'name="petal_width" value="12"' in html  # what the user typed stays
    assert len(fake.requests) == sent_before  # bad input never reaches the predictor


async def test_form_without_csrf_token_is_refused(frontend_client) -> None:
    async with frontend_client() as client:
        response = await client.post("/predict", form=VERSICOLOR)
        forged = await client.post("/predict", form={**VERSICOLOR, "csrf_token": "guessed"})
        html = await response.get_data(as_text=True)
    assert response.status_code == 400
    assert forged.status_code == 400
    assert "The form expired or did not come from this page" in html


async def test_predictor_down_is_503_with_a_clear_message_on_the_page(
    frontend_client, down_predictor
) -> None:
    async with frontend_client(predictor_url=down_predictor) as client:
        response = await _post_predict(client, VERSICOLOR)
        html = await response.get_data(as_text=True)
    assert response.status_code == 503
    assert f"cannot reach the predictor at {down_predictor}" in html
    assert "Traceback" not in html


async def test_predictor_slow_is_503_with_a_clear_message(frontend_client, slow_predictor) -> None:
    async with frontend_client(predictor_url=slow_predictor) as client:
        response = await _post_predict(client, VERSICOLOR)
        html = await response.get_data(as_text=True)
    assert response.status_code == 503
    assert "did not answer within 0.3 s" in html


async def test_events_page_groups_chains_with_durations_failures_and_dead_letters(
    frontend_client, filled_store
) -> None:
    async with frontend_client() as client:
        response = await client.get("/events")
        html = await response.get_data(as_text=True)
    assert response.status_code == 200
    ok = html.index(f'id="chain-{filled_store.deployed_chain}"')
    bad = html.index(f'id="chain-{filled_store.failed_chain}"')
    assert bad < ok  # newest chain first
    deployed = html[ok:]
    assert '<span class="badge ok">deployed</span>' in deployed
    assert "+42 s" in deployed  # the selection run took 42 s after its submission
    assert "deployed iris v2 (K=5, accuracy 96.7%) at 100% traffic" in deployed
    failed = html[bad:ok]
    assert '<span class="badge bad">failed</span>' in failed
    assert '<span class="badge dead">dead-lettered</span>' in failed
    assert "HTTP 400 from http://127.0.0.1:8091/: candidate uri not readable &lt;script&gt;" in failed


async def test_event_data_is_escaped(frontend_client) -> None:
    async with frontend_client() as client:
        html = await (await client.get("/events")).get_data(as_text=True)
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(" in html


async def test_one_chain_by_short_id(frontend_client, filled_store) -> None:
    short = filled_store.deployed_chain[:8]
    async with frontend_client() as client:
        response = await client.get(f"/events/{short}")
        html = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'id="chain-{filled_store.deployed_chain}"' in html
    assert filled_store.failed_chain not in html


async def test_unknown_chain_is_a_404_page(frontend_client) -> None:
    async with frontend_client() as client:
        response = await client.get("/events/does-not-exist")
        html = await response.get_data(as_text=True)
    assert response.status_code == 404
    assert "No chain &#39;does-not-exist&#39; in the event log" in html


async def test_pages_carry_security_headers(frontend_client) -> None:
    async with frontend_client() as client:
        response = await client.get("/predict")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_event_stream_sends_new_events_as_rendered_chains(frontend_client, filled_store) -> None:
    async with frontend_client() as client, client.request("/events/stream?after=7") as connection:
        await connection.send_complete()
        assert await asyncio.wait_for(connection.receive(), 2) == b"retry: 2000\n\n"
        new_chain = deployed_chain(datetime.now(UTC), version="v9")
        store = EventStore(filled_store.path)
        store.append(new_chain[0])
        store.close()
        message = await asyncio.wait_for(connection.receive(), 5)
        await connection.disconnect()
    assert message.startswith(b"id: 8\nevent: chain\ndata: ")
    update = orjson.loads(message.split(b"data: ", 1)[1])
    assert update["chainid"] == new_chain[0].chainid
    assert "training run trained 3 candidates for v9" in update["html"]


async def test_index_warns_when_the_predictor_serves_another_version_than_the_log_says(
    frontend_client,
) -> None:
    from tests.frontend.fake_predictor import FakePredictor, serve_in_thread

    with serve_in_thread(FakePredictor(version="v1")) as url:
        async with frontend_client(predictor_url=url) as client:
            html = await (await client.get("/")).get_data(as_text=True)
    assert "<dt>Answering version</dt><dd>v1</dd>" in html
    assert "The predictor answers with v1, the event log says v2 was deployed last." in html
