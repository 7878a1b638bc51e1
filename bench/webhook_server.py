"""The server side of ``bench/webhook_load.py``: what ``dealwatch worker ingest`` runs (the same settings, the
same ``IngestService``, the same ``serve_http``: uvicorn with h11, the same app factory and middleware), plus one
bare route in this benchmark's own app instance.

``POST /bench/bare`` reads the body and answers 202: no signature check, no parsing, no broker. It is the
baseline of ``ingest_over_bare_endpoint`` (what the same process, framework and server cost with no work) and
exists only here, never in the product's app.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dealwatch.workers import serve_http
from services.common.settings import load_settings
from services.ingest.web import IngestService

BARE_PATH = "/bench/bare"


class BareEndpoint:
    """A web part (like ``IngestService``) whose one route does no work."""

    def __init__(self) -> None:
        self.router = APIRouter()
        self.router.add_api_route(BARE_PATH, self.receive, methods=["POST"], status_code=202)

    async def receive(self, request: Request) -> Response:
        await request.body()
        return Response(status_code=202)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def ready(self) -> bool:
        return True


def main() -> int:
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    return serve_http(settings, [IngestService(settings), BareEndpoint()])


if __name__ == "__main__":
    sys.exit(main())
