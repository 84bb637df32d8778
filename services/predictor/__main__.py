"""``python -m services.predictor [--model_dir DIR] [--model_name NAME]``: serve on $KFCHAIN_PREDICTOR_PORT (8080).

Without ``--model_dir`` (or ``KFCHAIN_PREDICTOR_MODEL_DIR``) it serves the version marked current in
the serving store; with it, the one model.joblib in that directory (KServe's ``/mnt/models``).
"""

from __future__ import annotations

import logging
import sys

from services.predictor.model import ModelLoadError
from services.predictor.server import serve
from services.predictor.settings import PredictorSettings


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = PredictorSettings.from_args(sys.argv[1:] if argv is None else argv)
        serve(settings)
    except (ValueError, ModelLoadError) as error:
        # A bad setting or an unservable model directory: one line naming it, not a traceback.
        raise SystemExit(f"cannot start the predictor: {error}") from None


if __name__ == "__main__":
    main()
