"""``python -m services.detector``: run the detector worker with settings from the environment."""

from __future__ import annotations

import logging

from services.common.settings import load_settings
from services.detector.worker import run

if __name__ == "__main__":
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    raise SystemExit(run(settings))
