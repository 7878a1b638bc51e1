"""``GET /dashboard``: one HTML page and one small script, shipped in the package; no front-end build.

The page holds no data: its script asks ``/api/stats`` and ``/api/operations`` with the bearer token the user
types once (kept in the tab's ``sessionStorage``), and refreshes itself.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Response

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def asset(name: str) -> bytes:
    return resources.files("services.api").joinpath("static", name).read_bytes()


def build_dashboard_router() -> APIRouter:
    router = APIRouter(tags=["dashboard"])

    @router.get("/dashboard", response_class=Response, summary="The dashboard page (HTML)")
    def dashboard() -> Response:
        return Response(
            asset("dashboard.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
        )

    @router.get("/dashboard/dashboard.js", include_in_schema=False)
    def dashboard_script() -> Response:
        return Response(
            asset("dashboard.js"), media_type="text/javascript; charset=utf-8", headers=SECURITY_HEADERS
        )

    return router
