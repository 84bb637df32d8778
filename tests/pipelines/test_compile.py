"""The committed IR YAML under pipelines/compiled/ matches the pipeline code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.compile import COMPILED_DIR, FILES

ROOT = Path(__file__).resolve().parents[2]


def test_committed_yaml_is_up_to_date(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KFCHAIN_IMAGE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    subprocess.run(
        [sys.executable, "-m", "pipelines.compile", "--out", str(tmp_path)], check=True, env=env, cwd=ROOT
    )
    for name in FILES.values():
        fresh, committed = (tmp_path / name).read_text(), (COMPILED_DIR / name).read_text()
        assert fresh == committed, (
            f"pipelines/compiled/{name} is out of date: run `python -m pipelines.compile`"
        )


def test_cluster_pipelines_mount_the_model_pvc_and_run_on_the_project_image() -> None:
    docs = list(yaml.safe_load_all((COMPILED_DIR / FILES["model-selection"]).read_text()))
    spec, platform = docs[0], docs[1]
    images = {
        e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e
    }
    assert images == {"ghcr.io/kfchain/kfchain:latest"}
    commands = " ".join(str(e) for e in spec["deploymentSpec"]["executors"].values())
    assert "pip install" not in commands
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mounted = {
        name
        for name, e in executors.items()
        if any(
            p.get("constant") == "model-pvc" or p.get("pvcName") == "model-pvc" for p in e.get("pvcMount", [])
        )
    }
    assert {"exec-select-model", "exec-serve-model", "exec-announce"} <= mounted
