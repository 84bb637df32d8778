"""``python -m pipelines.compile``: write the cluster pipelines' IR YAML to ``pipelines/compiled/``.

The committed YAML must match the code (tests/pipelines/test_compile.py fails otherwise). It is
compiled with the default image (``KFCHAIN_IMAGE`` unset) so the result does not depend on the shell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
FILES = {"training": "training.yaml", "model-selection": "model_selection.yaml"}


def compile_all(out_dir: Path = COMPILED_DIR) -> list[Path]:
    """Compile both pipelines for the cluster target into ``out_dir``; return the written paths."""
    from kfp import compiler

    from pipelines.selection import build_selection_pipeline
    from pipelines.training import build_training_pipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, build in (("training", build_training_pipeline), ("model-selection", build_selection_pipeline)):
        path = out_dir / FILES[key]
        compiler.Compiler().compile(build("cluster"), str(path))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.compile``."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.compile", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=COMPILED_DIR, help=f"output folder (default {COMPILED_DIR})"
    )
    args = parser.parse_args(argv)
    for path in compile_all(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
