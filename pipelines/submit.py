"""``python -m pipelines.submit training|model_selection``: start a run locally or on a KFP cluster.

Without ``--host``/``KFP_HOST`` the run executes here (kfp.local SubprocessRunner), shows one line
per task and ends with a summary; with a host it is submitted with ``kfp.Client`` and the run id and
UI link are printed. Exit code 0 on success, 1 on a failed run, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from events.catalogue import MODEL_SELECTION, TRAINING
from pipelines.registry import SqliteRegistry
from pipelines.runner import RunHandle, RunResult, SubmitError, submit_selection, submit_training
from pipelines.settings import PipelinesSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.submit", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="pipeline", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model-name", help="model name (default $KFCHAIN_MODEL_NAME or iris)")
        p.add_argument("--host", help="KFP API URL (default $KFP_HOST; unset = run locally)")
        p.add_argument("--namespace", help="KFP namespace / profile (default $KFP_NAMESPACE)")
        p.add_argument(
            "--wait", action="store_true", help="cluster: wait for the run to finish (local runs always wait)"
        )
        p.add_argument(
            "--verbose", action="store_true", help="local: stream KFP's own log instead of progress lines"
        )
        p.add_argument("--quiet", action="store_true", help="local: print only the summary")
        p.add_argument(
            "--run-id", help=argparse.SUPPRESS
        )  # set by a parent process that needs the id up front

    training = sub.add_parser("training", help="train one KNN model per K and register them")
    common(training)
    training.add_argument("--version", help="model version (default: next free vN)")
    training.add_argument("--k", default="1,3,5,7,9", help="comma-separated K values (default 1,3,5,7,9)")
    training.add_argument("--scaler", default="standard", choices=["standard", "minmax"])
    training.add_argument(
        "--source", default="", help="CSV path or URL (default: iris bundled with scikit-learn)"
    )

    selection = sub.add_parser(
        "model_selection", aliases=["model-selection"], help="select and stage the best model of a version"
    )
    common(selection)
    selection.add_argument("--version", required=True, help="model version to select from")
    selection.add_argument("--chain-id", default="", help="chain id of the event that caused this run")
    selection.add_argument("--causation-id", default="", help="id of the event that caused this run")
    return parser


def summary(result: RunResult, settings: PipelinesSettings) -> str:
    """The one-screen summary of a finished local run."""
    lines = [
        "",
        f"{result.pipeline} run {result.run_id}: {result.state} in {result.seconds:.1f}s",
        f"  model         {result.model_name} {result.model_version}",
    ]
    records = SqliteRegistry(settings.home / "registry.db").models(result.model_name, result.model_version)
    if result.pipeline == TRAINING and records:
        lines.append("  candidates    K    accuracy  cv-accuracy")
        for r in records:
            cv = "-" if r.cv_accuracy is None else f"{r.cv_accuracy:.4f}"
            lines.append(f"                {r.k:<4} {r.accuracy:.4f}    {cv}")
    chosen = next((r for r in records if r.selected), None)
    if result.pipeline == MODEL_SELECTION and chosen is not None:
        lines.append(f"  selected      K={chosen.k} accuracy={chosen.accuracy:.4f}")
        lines.append(f"  serving copy  {chosen.serving_uri}")
    if result.error:
        lines.append(f"  error         {result.error}")
    if result.event_id:
        lines.append(f"  event         {result.event_type} id={result.event_id}")
        lines.append(
            f"                chain {result.chainid} -> topic {result.topic} at {result.bootstrap_servers}"
        )
    else:
        lines.append("  event         none published (see the log)")
    lines.append(f"  KFP log       {result.log_path}")
    if result.pipeline == TRAINING and result.succeeded:
        lines.append(
            f"  next          python -m pipelines.submit model_selection --version {result.model_version}"
        )
    return "\n".join(lines)


def _settings(args: argparse.Namespace) -> PipelinesSettings:
    settings = PipelinesSettings.from_env()
    changes: dict[str, Any] = {}
    if args.host:
        changes["kfp_host"] = args.host
    if args.namespace:
        changes["kfp_namespace"] = args.namespace
    if args.model_name:
        changes["model_name"] = args.model_name
    return dataclasses.replace(settings, **changes)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.submit``."""
    args = _parser().parse_args(argv)
    pipeline = TRAINING if args.pipeline == "training" else MODEL_SELECTION
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def progress(line: str) -> None:
        if not args.quiet:  # write, not print: kfp.local patches print() to indent its own output
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    where = f"KFP at {settings.kfp_host}" if settings.kfp_host else f"locally (state in {settings.home})"
    try:
        if pipeline == TRAINING:
            outcome = submit_training(
                settings,
                model_name=settings.model_name,
                model_version=args.version,
                k_values=args.k,
                scaler=args.scaler,
                source=args.source,
                wait=settings.local or args.wait,
                run_id=args.run_id,
                progress=progress,
                verbose=args.verbose,
            )
        else:
            outcome = submit_selection(
                settings.model_name,
                args.version,
                args.chain_id,
                args.causation_id,
                settings,
                wait=settings.local or args.wait,
                run_id=args.run_id,
                progress=progress,
                verbose=args.verbose,
            )
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if isinstance(outcome, RunHandle):
        print(f"submitted {pipeline} run {outcome.run_id} to {where}")
        print(f"  model   {outcome.model_name} {outcome.model_version}")
        print(f"  UI      {outcome.url}")
        return 0
    if not settings.local:
        print(f"{pipeline} run {outcome.run_id} on {where}: {outcome.state}\n  UI      {outcome.url}")
        return 0 if outcome.succeeded else 1
    print(summary(outcome, settings))
    return 0 if outcome.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
