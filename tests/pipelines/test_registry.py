"""The SQLite model registry and `python -m pipelines.registry`."""

from __future__ import annotations

import json

import pytest

from pipelines.registry import AlreadyRegisteredError, ModelRecord, NotRegisteredError, SqliteRegistry, main


def _record(version: str, k: int, accuracy: float = 0.9) -> ModelRecord:
    return ModelRecord(
        "iris", version, k, accuracy, f"/artifacts/{version}/{k}", cv_accuracy=0.9, dataset_hash="abc"
    )


def test_registering_the_same_name_version_k_twice_is_an_error(tmp_path) -> None:
    registry = SqliteRegistry(tmp_path / "registry.db")
    registry.register(_record("v1", 3))
    with pytest.raises(AlreadyRegisteredError, match=r"'iris' version 'v1' k=3 is already registered"):
        registry.register(_record("v1", 3, accuracy=0.99))
    assert [r.accuracy for r in registry.models("iris", "v1")] == [0.9]


def test_next_version_follows_the_highest_vn(tmp_path) -> None:
    registry = SqliteRegistry(tmp_path / "registry.db")
    assert registry.next_version("iris") == "v1"
    for version in ("v1", "v2", "v10", "experiment"):
        registry.register(_record(version, 1))
    assert registry.next_version("iris") == "v11"
    assert registry.next_version("other") == "v1"


def test_selected_and_serving_flags(tmp_path) -> None:
    registry = SqliteRegistry(tmp_path / "registry.db")
    for version in ("v1", "v2"):
        for k in (1, 3):
            registry.register(_record(version, k))
    with pytest.raises(NotRegisteredError, match="no selected model"):
        registry.mark_serving("iris", "v1")
    registry.mark_selected("iris", "v1", 3, "file:///serving/iris/v1")
    registry.mark_selected("iris", "v2", 1, "file:///serving/iris/v2")
    registry.mark_serving("iris", "v1")
    assert registry.serving("iris").model_version == "v1"
    registry.mark_serving("iris", "v2")
    serving = registry.serving("iris")
    assert (serving.model_version, serving.k, serving.serving_uri) == ("v2", 1, "file:///serving/iris/v2")
    assert [r.k for r in registry.models("iris", "v1") if r.selected] == [3]
    with pytest.raises(NotRegisteredError):
        registry.mark_selected("iris", "v1", 99, "x")


def test_bad_version_name_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="model_version '../etc' is not valid"):
        SqliteRegistry(tmp_path / "registry.db").register(_record("../etc", 1))


def test_cli_lists_models_as_json_and_table(tmp_path, capsys) -> None:
    registry = SqliteRegistry(tmp_path / "registry.db")
    registry.register(_record("v1", 5, accuracy=0.97))
    registry.mark_selected("iris", "v1", 5, "file:///s")
    assert main(["--registry", str(tmp_path / "registry.db"), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["k"], listed["accuracy"], listed["selected"], listed["serving"]) == (5, 0.97, True, False)
    assert main(["--registry", str(tmp_path / "registry.db")]) == 0
    table = capsys.readouterr().out
    assert "v1" in table and "0.9700" in table and "yes" in table
