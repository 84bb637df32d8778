"""Local runs in the background: one child process per run, forked from a warm fork server.

A run that must not block its caller (the selector answers its HTTP request at once) runs in its
own process. Started as a fresh ``python -m pipelines.submit ...`` that process spent about a second
importing kfp and the pipelines before its first task. Here it is forked from a multiprocessing fork
server that imported them once (``warm_up()`` starts it early, in the background), so the run's
first task starts within milliseconds. Each run is still a separate process with its own
environment, working directory and log file. A caller that exits normally first waits for its runs
to end (multiprocessing joins its children at exit), so a restarted selector never cuts a run
short; a caller that is killed leaves them running, as it would a subprocess.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path

#: What the fork server imports once, for every run it forks.
PRELOAD = ["kfp.local", "kfp.dsl", "pipelines.submit", "pipelines.training", "pipelines.selection"]

_lock = threading.Lock()
_context: BaseContext | None = None


def _forkserver() -> BaseContext:
    global _context
    with _lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([*PRELOAD, *_main_module()])
            _context = context
        return _context


def _main_module() -> list[str]:
    # multiprocessing runs the caller's main module (``python -m services.selector``) again in each
    # child, as ``__mp_main__``; imported once in the server, that costs the child nothing.
    name = getattr(sys.modules["__main__"].__spec__, "name", None)
    return [name] if name and not name.endswith("__main__") else []


def warm_up() -> None:
    """Start the fork server now (it imports ``PRELOAD`` in its own process); returns at once."""
    from multiprocessing import forkserver

    _forkserver()
    threading.Thread(target=forkserver.ensure_running, name="kfchain-forkserver", daemon=True).start()


def start_run(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> BaseProcess:
    """Start ``python -m pipelines.submit <argv>`` as a forked child; its output goes to ``log_path``."""
    process = _forkserver().Process(  # type: ignore[attr-defined]
        target=_run_submit, args=(argv, env, str(cwd), str(log_path)), name=f"kfchain-run-{argv[0]}"
    )
    process.start()
    return process


def _run_submit(argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> None:
    """The child: the environment and output of a subprocess, then ``pipelines.submit.main``."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    from pipelines.submit import main

    sys.exit(main(argv))
