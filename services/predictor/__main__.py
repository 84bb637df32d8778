"""``python -m services.predictor``: serve the current model version on $KFCHAIN_PREDICTOR_PORT (8080)."""

from __future__ import annotations

import logging

from services.predictor.server import serve
from services.predictor.settings import PredictorSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(PredictorSettings.from_env())


if __name__ == "__main__":
    main()
