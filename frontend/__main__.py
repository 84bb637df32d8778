"""``python -m frontend``: serve the frontend on ``KFCHAIN_FRONTEND_HOST:PORT``.

uvicorn (uvloop + httptools, one send per response: frontend.http_protocol) by default;
``KFCHAIN_FRONTEND_SERVER=hypercorn`` serves with hypercorn instead. Measured on loopback (2 cores), a constant ASGI app answers ~12,700 req/s on
uvicorn/httptools and ~1,500 req/s on hypercorn/h11, so hypercorn alone caps the frontend below
half of the predictor's throughput (load/bench/frontend.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from frontend.settings import Settings

APP_PATH = "frontend.asgi:app"
log = logging.getLogger("frontend")


def serve_uvicorn(settings: Settings) -> int:
    import uvicorn

    from frontend.http_protocol import CoalescingHttpToolsProtocol

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,  # httptools, one send per response
        "lifespan": "on",
        "access_log": False,  # metrics count requests; a log line per request costs a third of throughput
        "timeout_keep_alive": 75,  # longer than common proxies' idle timeout
        "timeout_graceful_shutdown": 2,  # live event streams never end by themselves
        "log_config": None,  # keep our logging setup
        "server_header": False,
    }
    if settings.workers > 1:
        uvicorn.run(APP_PATH, workers=settings.workers, **options)
        return 0
    from frontend.asgi import build

    uvicorn.Server(uvicorn.Config(build(settings), **options)).run()
    return 0


def serve_hypercorn(settings: Settings) -> int:
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.worker_class = "uvloop"
    config.accesslog = None
    config.errorlog = logging.getLogger("frontend.server")
    config.graceful_timeout = 2.0
    config.keep_alive_timeout = 75.0
    config.keep_alive_max_requests = 100_000
    config.application_path = APP_PATH
    if settings.workers > 1:
        from hypercorn.run import run

        config.workers = settings.workers
        config.errorlog = "-"  # spawned workers do not inherit our logging setup
        return run(config)

    import uvloop
    from hypercorn.asyncio import serve

    from frontend.asgi import build

    app = build(settings)

    async def serve_until_signal() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    uvloop.run(serve_until_signal())
    return 0


SERVERS = {"uvicorn": serve_uvicorn, "hypercorn": serve_hypercorn}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s frontend %(levelname)s %(message)s")
    server = os.environ.get("KFCHAIN_FRONTEND_SERVER") or "uvicorn"
    try:
        settings = Settings.from_env()
        if server not in SERVERS:
            raise ValueError(f"KFCHAIN_FRONTEND_SERVER={server!r} must be one of {', '.join(SERVERS)}")
    except ValueError as exc:
        print(f"frontend: {exc}", file=sys.stderr)
        return 2
    if settings.workers > 1:
        # Worker processes build their own app from the environment: give them one shared secret
        # so a form rendered by one worker validates in another.
        os.environ.setdefault("KFCHAIN_SECRET_KEY", settings.secret_key)
    log.info(
        "serving on http://%s:%d with %s (%d worker(s)), predictor %s, events %s",
        settings.host,
        settings.port,
        server,
        settings.workers,
        settings.predictor_url,
        settings.events_db,
    )
    return SERVERS[server](settings)


if __name__ == "__main__":
    sys.exit(main())
