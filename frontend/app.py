"""``create_app(settings)``: the Quart app with its hooks, security headers, metrics and error pages."""

from __future__ import annotations

import asyncio
import time

from quart import Quart, Response, g, render_template, request
from werkzeug.exceptions import HTTPException

from events.store import EventStore
from frontend.api import api, json_response
from frontend.csrf import csrf_token
from frontend.metrics import FrontendMetrics
from frontend.pages import pages
from frontend.predictor import PredictorClient
from frontend.settings import Settings
from frontend.state import FrontendState, state
from frontend.timeline import format_duration, short_type

#: Largest request body accepted (a batch of 1000 flowers is ~40 KiB of JSON).
MAX_BODY_BYTES = 256 * 1024

# Event data is untrusted and rendered into pages: no inline script or style, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(settings: Settings | None = None) -> Quart:
    """The frontend app. The predictor client and the event store open in ``before_serving``."""
    settings = settings or Settings.from_env()
    app = Quart(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        DEBUG=settings.debug,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=16 * 1024,
        MAX_FORM_PARTS=20,
        SESSION_COOKIE_NAME="kfchain_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        TEMPLATES_AUTO_RELOAD=settings.debug,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.extensions["kfchain"] = FrontendState(
        settings=settings,
        predictor=PredictorClient(settings.predictor_url, settings.model_name, settings.predictor_timeout_s),
        metrics=FrontendMetrics.create(),
    )
    app.jinja_env.globals.update(csrf_token=csrf_token, model_name=settings.model_name)
    app.jinja_env.filters.update(duration=format_duration, short_type=short_type)
    app.register_blueprint(api)
    app.register_blueprint(pages)

    @app.before_serving
    async def open_connections() -> None:
        app_state = state()
        await app_state.predictor.open()
        if app_state.store is None:
            app_state.store = await asyncio.to_thread(EventStore, settings.events_db)

    @app.after_serving
    async def close_connections() -> None:
        app_state = state()
        await app_state.predictor.close()
        if app_state.store is not None:
            app_state.store.close()
            app_state.store = None

    @app.before_request
    async def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def finish(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        started = g.get("started")
        if started is not None:
            state().metrics.observe(
                route, request.method, response.status_code, time.perf_counter() - started
            )
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response | tuple[str, int]:
        status = error.code or 500
        message = _MESSAGES.get(status, error.description or error.name)
        if status == 404 and error.description and "No chain" in error.description:
            message = error.description
        if (
            request.path.startswith(("/api/", "/health/"))
            or request.accept_mimetypes.best == "application/json"
        ):
            return json_response({"error": message}, status)
        return await render_template("error.html", status=status, title=error.name, message=message), status

    @app.errorhandler(Exception)
    async def unexpected_error(error: Exception) -> Response | tuple[str, int]:
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        message = "Something went wrong in the frontend; the error is in its log. Try again."
        if request.path.startswith(("/api/", "/health/")):
            return json_response({"error": message}, 500)
        return await render_template("error.html", status=500, title="Internal error", message=message), 500

    return app


_MESSAGES = {
    404: "There is no page here. Try the model status, the predict page or the event log.",
    405: "This address does not accept that method.",
    413: f"The request is larger than {MAX_BODY_BYTES // 1024} KiB; send fewer flowers per call.",
}
