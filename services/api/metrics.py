"""Request metrics of the API, by route template (never the raw path) and status; database trouble becomes
503 (unreachable, with ``Retry-After``) or 400 (a value the database refuses), never 500."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

API_REQUESTS = Counter("dealwatch_api_requests", "API requests", ["method", "route", "status"])
API_LATENCY = Histogram("dealwatch_api_request_seconds", "API request duration", ["method", "route"])


class MeasuredRoute(APIRoute):
    """Counts every request of the route with its template and final status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        template = self.path_format

        async def measured(request: Request) -> Response:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status_code
                return response
            except HTTPException as exc:
                status = exc.status_code
                raise
            except RequestValidationError:
                status = 422
                raise
            except DBAPIError as exc:
                response = database_trouble(exc)
                status = response.status_code
                return response
            finally:
                API_REQUESTS.labels(request.method, template, str(status)).inc()
                API_LATENCY.labels(request.method, template).observe(time.perf_counter() - started)

        return measured


def database_trouble(exc: DBAPIError) -> JSONResponse:
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return JSONResponse({"detail": "the database is unavailable"}, 503, headers={"Retry-After": "5"})
    return JSONResponse({"detail": "the database refused a value of this request"}, 400)
