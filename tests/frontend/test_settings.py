"""Settings from the environment, and the frontend's dependency rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from frontend.settings import Settings


def test_defaults_serve_locally_on_8081_against_the_local_predictor() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8081, 1)
    assert settings.predictor_url == "http://127.0.0.1:8080"
    assert settings.model_name == "iris"
    assert settings.events_db == Path(".kfchain") / "events.db"
    assert settings.debug is False
    assert len(settings.secret_key) >= 32


def test_port_variable_of_the_runtime_wins() -> None:
    settings = Settings.from_env({"PORT": "9000", "KFCHAIN_FRONTEND_PORT": "8082", "KFCHAIN_HOME": "/srv/kf"})
    assert settings.port == 9000
    assert settings.events_db == Path("/srv/kf/events.db")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"KFCHAIN_FRONTEND_PORT": "eighty"}, "KFCHAIN_FRONTEND_PORT='eighty' is not an integer"),
        ({"KFCHAIN_FRONTEND_WORKERS": "0"}, "KFCHAIN_FRONTEND_WORKERS='0' must be between 1 and 64"),
        ({"KFCHAIN_PREDICTOR_URL": "127.0.0.1:8080"}, "must be an http:// or https:// URL"),
        ({"KFCHAIN_PREDICTOR_TIMEOUT": "-1"}, "KFCHAIN_PREDICTOR_TIMEOUT='-1' must be greater than 0"),
        ({"KFCHAIN_DEBUG": "maybe"}, "KFCHAIN_DEBUG='maybe' is not a boolean"),
        ({"KFCHAIN_MODEL_NAME": "iris:predict"}, "KFCHAIN_MODEL_NAME='iris:predict'"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_frontend_imports_nothing_of_the_project_but_events() -> None:
    forbidden = {"pipelines", "services", "knative", "load", "tests"}
    root = Path(__file__).resolve().parents[2] / "frontend"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []
