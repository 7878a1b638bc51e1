"""The dashboard in headless Chromium against `dealwatch up --demo`: the chart and the tables show the demo's
data, the token is asked once and kept for the tab, and the page refreshes itself. A screenshot is kept in
``var/test-artifacts/dashboard.png``.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test``; ``DEALWATCH_TEST_CHROMIUM`` for
another path), driven by Playwright without any browser download. Missing, the test fails; it never skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import eventually_sync
from tests.e2e.conftest import StartUp

pytestmark = pytest.mark.e2e

TOKEN = "e2e-dashboard-token-51c7a2"
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
DATA_TIMEOUT = 150.0


def chromium_path() -> str:
    wanted = os.environ.get("DEALWATCH_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(wanted).exists():
        pytest.fail(
            f"Chromium is not installed at {wanted}: `make test` installs Debian's package "
            "(scripts/ensure-chromium.sh), or set DEALWATCH_TEST_CHROMIUM"
        )
    return wanted


def api(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(url + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    response.raise_for_status()
    return response.json()


def demo_counted(url: str) -> bool:
    """Interruptions counted by the stats worker, tasks open, and the broker's lag read."""
    totals = api(url, "/api/stats", period="day")["totals"]["counts"]
    ops = api(url, "/api/operations")
    groups = {p["group"] for p in ops["lag"]}
    return (
        totals["interruptions"] >= 3
        and totals["tasks"] >= 3
        and ops["tasks_by_status"].get("open", 0) > 0
        and "dealwatch-stats" in groups
    )


def metric_samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(url + "/metrics", timeout=10).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def pipeline_metrics_present(url: str) -> bool:
    samples = metric_samples(url)
    services_in = {labels["service"] for labels, v in samples.get("dealwatch_events_in_total", []) if v > 0}
    return (
        {"detector", "stats"} <= services_in
        and any(v > 0 for _, v in samples.get("dealwatch_event_to_interruption_seconds_count", []))
        and any(v > 0 for _, v in samples.get("dealwatch_interruption_to_task_seconds_count", []))
        and "dealwatch_quiet_deadlines_pending" in samples
        and any(
            labels["group"] == "dealwatch-stats" for labels, _ in samples.get("dealwatch_consumer_lag", [])
        )
    )


def test_the_dashboard_shows_the_demo_in_a_chart_and_tables(start_up: StartUp) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    up = start_up("--demo", env={"DEALWATCH_API_TOKEN": TOKEN})
    eventually_sync(
        lambda: demo_counted(up.url), timeout=DATA_TIMEOUT, interval=1.0, what="the demo counted in the stats"
    )
    eventually_sync(
        lambda: pipeline_metrics_present(up.url),
        timeout=DATA_TIMEOUT,
        interval=1.0,
        what="every service's metrics in the /metrics of `dealwatch up`",
    )
    assert TOKEN not in httpx.get(up.url + "/metrics", timeout=10).text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1500})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(up.url + "/dashboard?refresh=2")

            page.wait_for_selector("#login:not([hidden])")
            page.fill("#token", "not-the-token")
            page.click("#login button[type=submit]")
            page.wait_for_selector("#login-error:not(:empty)")
            assert page.is_visible("#login")

            page.fill("#token", TOKEN)
            page.click("#login button[type=submit]")
            page.wait_for_selector("body[data-loaded=true]")
            page.wait_for_selector("#chart rect.bar")

            bars = page.locator("#chart rect.bar")
            counted = [
                (bars.nth(i).get_attribute("data-cause"), int(bars.nth(i).get_attribute("data-count") or 0))
                for i in range(bars.count())
            ]
            assert counted and sum(n for _, n in counted) >= 3
            causes = page.locator("#cause-table tbody tr td:first-child").all_text_contents()
            assert set(causes) >= {cause for cause, _ in counted}
            assert int(page.text_content("#k-interruptions") or "0") >= 3
            assert int(page.text_content("#k-open") or "0") > 0
            assert "dealwatch-stats" in page.locator("#lag-table tbody tr td:first-child").all_text_contents()
            topics = page.locator("#topic-table tbody tr td:first-child").all_text_contents()
            assert "deals.interruptions.v1" in topics
            assert page.locator("#task-table tbody tr").count() >= 2

            page.wait_for_selector("body[data-refreshes='3']")  # it refreshes itself
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            page.reload()  # the token is kept for the tab: no second question
            page.wait_for_selector("body[data-loaded=true]")
            assert not page.is_visible("#login")
            assert errors == []
        finally:
            browser.close()
