"""The operator dashboard in a real browser (Chromium via Playwright).

Against a real ``terraops serve`` on the mapped home (uhi v2 champion over v1,
flood v1): the rollback button really moves the champion back; the on-call
panel shows the SLOs, error budget, live error and drift that the server
computed from real traffic, feedback and a real drift check; a challenger alias
that names the champion reads "no challenger". The README's dashboard and
drift-report screenshots are taken here.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from browser_support import (
    ADMIN_TOKEN,
    PageWatch,
    Recording,
    assert_offline_and_clean,
    save_still,
    serve,
)

from serving_support import LEGACY_BODY, RunningProcess, TrainedHome, settings_env, wait_until
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

OpenPage = Callable[[], tuple[Any, PageWatch]]
#: What Chromium logs for a fetch the admin API refuses on purpose in a test.
REFUSED = ("status of 401", "status of 409")


def _traffic(url: str) -> None:
    """Some requests for the dashboard's traffic table (and two refused ones)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(60):
            assert client.post("/v1/uhi/predict", json=LEGACY_BODY).status_code == 200
        for _ in range(2):
            assert (
                client.post("/v1/uhi/predict", json={**LEGACY_BODY, "ndvi": 3}).status_code == 422
            )
        body = {"instances": [LEGACY_BODY] * 50}
        assert client.post("/v1/uhi/predict/batch", json=body).status_code == 200
        flood = {f.name: f.example for f in get_service("flood").features if f.required}
        for _ in range(20):
            assert client.post("/v1/flood/predict", json=flood).status_code == 200


def _served_uhi_version(url: str) -> int:
    response = httpx.post(f"{url}/v1/uhi/predict", json=LEGACY_BODY, timeout=10)
    assert response.status_code == 200
    assert response.headers["X-Model-Version"] == str(response.json()["model"]["version"])
    return int(response.json()["model"]["version"])


def assert_no_challenger(page: Any, service: str) -> None:
    """The card says there is no challenger (not the champion twice) and promote is off."""
    box = page.locator(f"[data-testid=challenger-{service}]")
    assert box.locator("[data-testid=no-challenger]").inner_text() == "no challenger"
    assert box.locator("[data-testid=challenger-version]").count() == 0
    assert page.locator(f"#service-{service} [data-action=promote]").is_disabled()


def test_dashboard_rollback_button_moves_the_champion_back(
    map_settings: Settings,
    mapped_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
) -> None:
    first, second = mapped_home.uhi_versions
    server = serve(start_server, map_settings)
    assert _served_uhi_version(server.url) == second
    _traffic(server.url)
    html = httpx.get(f"{server.url}/", timeout=10).text
    assert ADMIN_TOKEN not in html

    page, watch = open_page()
    page.goto(f"{server.url}/")
    uhi = page.locator("#service-uhi")
    champion = uhi.locator("[data-testid=champion-version]")
    champion.wait_for(timeout=15_000)
    assert champion.inner_text() == f"v{second}"
    assert "MAE · spatial CV" in uhi.locator("[data-role=champion]").inner_text()
    # uhi's challenger alias still names v1 (trained, then superseded): a challenger.
    # flood's names its champion: that is no challenger, and nothing to promote.
    assert f"v{first}" in uhi.locator("[data-testid=challenger-version]").inner_text()
    assert not uhi.locator("[data-action=promote]").is_disabled()
    assert_no_challenger(page, "flood")
    # The server's own count (good, refused and batch requests) is what the page shows.
    figures = httpx.get(f"{server.url}/v1/stats", timeout=10).json()["services"]["uhi"]
    total = figures["predict"]["total"] + figures["batch"]["total"]
    assert figures["predict"]["errors_4xx_total"] == 2 and total >= 63
    page.wait_for_function(
        "(n) => document.querySelector('#service-uhi [data-field=stats]')"
        ".innerText.includes(n + ' requests since start')",
        arg=total,
    )
    assert "pid" in uhi.locator("[data-field=stats-scope]").inner_text()

    # A wrong token: the admin API's refusal is shown, nothing moves.
    page.fill("#admin-token", "not-the-token")
    page.click("#token-form button[type=submit]")
    uhi.locator("[data-action=rollback]").click()
    result = uhi.locator("[data-field=result]")
    page.wait_for_function(
        "() => /401/.test(document.querySelector('#service-uhi [data-field=result]').innerText)"
    )
    assert "missing or wrong admin token" in result.inner_text()
    assert _served_uhi_version(server.url) == second

    # The right token; flood has no earlier champion: 409 with the API's message.
    page.fill("#admin-token", ADMIN_TOKEN)
    page.click("#token-form button[type=submit]")
    assert page.locator("#admin-token").input_value() == ""  # not kept in the form
    flood = page.locator("#service-flood")
    flood.locator("[data-action=rollback]").click()
    page.wait_for_function(
        "() => /409/.test(document.querySelector('#service-flood [data-field=result]').innerText)"
    )
    assert "no earlier champion" in flood.locator("[data-field=result]").inner_text()

    # One click: uhi goes back to the previous champion, and the API serves it.
    page.fill("#admin-reason", "v2 runs hot in the old town")
    uhi.locator("[data-action=rollback]").click()
    page.wait_for_function(
        "(v) => document.querySelector('#service-uhi [data-testid=champion-version]')"
        ".innerText === 'v' + v",
        arg=first,
        timeout=15_000,
    )
    assert f"v{second} → v{first}" in result.inner_text()
    wait_until(lambda: _served_uhi_version(server.url) == first, 10, "API serves the rollback")
    history = uhi.locator("[data-field=history]")
    history.locator("tr.is-rollback").first.wait_for(timeout=10_000)
    assert "v2 runs hot in the old town" in history.inner_text()
    page.wait_for_function(  # v1 is champion and challenger now: no challenger
        "() => document.querySelector('[data-testid=challenger-uhi]')"
        ".innerText.includes('no challenger')",
        timeout=15_000,
    )
    assert_no_challenger(page, "uhi")
    assert ADMIN_TOKEN not in page.content()

    assert_offline_and_clean(watch, *REFUSED)


# ----- the on-call panel --------------------------------------------------------------

FEEDBACK_ROWS = 25
LIVE_MAE = 0.5  # every observed value is 0.5 K off the prediction: MAE 0.5 (target <= 1)


def _varied_uhi_traffic(client: httpx.Client, n: int) -> None:
    """Point requests over a range of inputs, like a city's cells (for the drift check)."""
    rng = np.random.default_rng(7)
    for _ in range(n):
        body = {
            "ndvi": float(rng.uniform(0.05, 0.8)),
            "building_density": float(rng.uniform(0.05, 0.9)),
            "water_distance": float(rng.uniform(50.0, 3000.0)),
        }
        assert client.post("/v1/uhi/predict", json=body).status_code == 200


def _feedback(client: httpx.Client) -> None:
    """Ground truth for the live error, through the API with the (admin) feedback token."""
    predicted = client.post("/v1/uhi/predict", json=LEGACY_BODY).json()["prediction"]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for i in range(FEEDBACK_ROWS):
        observed = predicted + (LIVE_MAE if i % 2 else -LIVE_MAE)
        body = {"features": LEGACY_BODY, "observed": observed}
        answer = client.post("/v1/uhi/feedback", json=body, headers=headers)
        assert answer.status_code == 201, answer.text


def _drift_check_with_report(settings: Settings) -> Path:
    """The documented cron drift check: the prediction log → Evidently report + state JSON."""
    out = settings.reports_dir / "drift" / "uhi" / "latest.html"
    args = [sys.executable, "-m", "terraops.cli.main", "monitor", "drift", "uhi"]
    args += ["--from-log", "--since", "1h", "--out", str(out)]
    done = subprocess.run(
        args, env=settings_env(settings), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _cell(card: Any, slo: str, testid: str = "slo-current") -> str:
    return str(card.locator(f"tr[data-slo={slo}] [data-testid={testid}]").inner_text())


def _assert_drift_rule(drift: dict[str, Any], rule: str) -> None:
    """The drift card names the dataset rule that fired: enough features, or a critical one."""
    share, threshold = drift["drifted_share"], drift["drift_share_threshold"]
    share_fired = share >= threshold
    assert drift["critical"] == (share_fired or bool(drift["critical_features"]))
    share_text = f"{share * 100:.0f}\u00a0% of features drifted"
    if share_fired:
        assert f"dataset drift: {share_text} (≥ {threshold * 100:.0f}\u00a0%)" in rule
    if drift["critical_features"]:
        assert "critical feature drifted: " + ", ".join(drift["critical_features"]) in rule
    if not drift["critical"]:
        assert "critical" not in rule.replace("no critical feature", "")


def test_dashboard_on_call_panel_shows_slos_budget_live_error_and_drift(
    map_settings: Settings,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
) -> None:
    server = serve(start_server, map_settings)
    _traffic(server.url)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        _varied_uhi_traffic(client, 100)
        _feedback(client)
    time.sleep(1.5)  # the prediction log flushes every second
    report = _drift_check_with_report(map_settings)

    status = httpx.get(f"{server.url}/v1/ops/slo", timeout=30).json()
    uhi_status = status["services"]["uhi"]
    objectives = {o["slo"]: o for o in uhi_status["objectives"]}
    availability, latency = objectives["availability"], objectives["latency_p95"]
    assert availability["status"] == "ok" and availability["observed"] == 0.0
    assert availability["n"] >= 160  # the good point requests and the batch
    assert availability["budget"] == {
        "allowed_share": 0.001, "bad_share": 0.0, "burn_rate": 0.0, "left": 1.0,
    }  # fmt: skip
    assert latency["observed"] is not None and latency["budget"] is not None
    assert uhi_status["live_error"]["n"] == FEEDBACK_ROWS
    assert uhi_status["live_error"]["value"] == pytest.approx(LIVE_MAE, abs=1e-6)
    drift = uhi_status["drift"]
    assert drift["status"] == "checked" and drift["report_url"] == "/v1/ops/drift/uhi/report"
    assert status["services"]["flood"]["live_error"]["value"] is None  # no feedback
    assert status["services"]["flood"]["drift"] is None  # no check ran
    html = httpx.get(f"{server.url}{drift['report_url']}", timeout=10)
    assert html.status_code == 200 and html.text == report.read_text(encoding="utf-8")
    assert "sandbox" in html.headers["Content-Security-Policy"]
    assert httpx.get(f"{server.url}/v1/ops/drift/flood/report", timeout=10).status_code == 404

    page, watch = open_page()
    page.goto(f"{server.url}/")
    uhi = page.locator("#service-uhi")
    uhi.locator("tr[data-slo=availability]").wait_for(timeout=20_000)
    assert _cell(uhi, "availability") == "0.00\u00a0% 5xx"
    row = uhi.locator("tr[data-slo=availability]").inner_text()
    assert "100\u00a0%" in row and "0.00×" in row and "ok" in row
    assert _cell(uhi, "latency_p95") == f"{latency['observed']:.2f} ms"
    live = uhi.locator("[data-testid=live-error-uhi]")
    assert live.locator("[data-testid=live-error-value]").inner_text() == "0.5000"
    assert f"over {FEEDBACK_ROWS} samples" in live.inner_text()
    box = uhi.locator("[data-testid=drift-uhi]")
    assert f"{drift['drifted_share'] * 100:.0f}\u00a0%" in box.inner_text()
    _assert_drift_rule(drift, box.locator("[data-testid=drift-rule]").inner_text())
    assert uhi.locator("[data-testid=drift-report-link]").get_attribute("href") == (
        "/v1/ops/drift/uhi/report"
    )
    flood = page.locator("#service-flood")
    flood_live = flood.locator("[data-testid=live-error-flood]").inner_text()
    assert "Not enough ground truth yet" in flood_live
    assert "No drift check yet" in flood.locator("[data-testid=drift-flood]").inner_text()
    assert_no_challenger(page, "flood")

    page.fill("#admin-token", ADMIN_TOKEN)  # the alias history in the screenshot too
    page.click("#token-form button[type=submit]")
    uhi.locator("[data-field=history] table").wait_for(timeout=10_000)
    page.wait_for_timeout(3500)  # one stats refresh
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    assert_offline_and_clean(watch)

    # The Evidently report the check wrote, as the dashboard's link serves it.
    report_page, report_watch = open_page()
    report_page.goto(f"{server.url}{drift['report_url']}")
    report_page.get_by_text("ndvi").first.wait_for(timeout=30_000)
    report_page.wait_for_load_state("networkidle")
    report_page.wait_for_timeout(1000)  # the report's own charts draw after load
    save_still(report_page.screenshot(), screenshots / "drift-report.png")
    assert_offline_and_clean(report_watch)


# ----- the recorded demo: a regressed release, its SLO breach, a one-click rollback ----

REGRESSED_MAE = 3.0  # the ground truth now sits 3 K off every prediction: MAE 3 (target <= 1)


def _wait_for_verdict(page: Any, verdict: str) -> None:
    page.wait_for_function(
        "(v) => document.querySelector('#service-uhi [data-field=slo-verdict]').innerText === v",
        arg=verdict,
        timeout=40_000,  # the server recomputes the SLO status at most every 10 s
    )


def test_recorded_regressed_release_breaches_its_slo_and_one_click_rolls_it_back(
    map_settings: Settings,
    mapped_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
    open_page: OpenPage,
    screenshots: Path,
) -> None:
    """The README's animation of the dashboard, frame by frame from a real run.

    uhi v2 was just promoted over v1; ground truth for what v2 served comes back
    3 K off, so its live-error SLO is breached; one click on "Roll back" (with a
    reason) restores v1, which the API serves at once.
    """
    first, second = mapped_home.uhi_versions
    server = serve(start_server, map_settings)
    _traffic(server.url)
    page, watch = open_page()
    page.goto(f"{server.url}/")
    uhi = page.locator("#service-uhi")
    page.fill("#admin-token", ADMIN_TOKEN)
    page.click("#token-form button[type=submit]")
    uhi.locator("[data-field=history] table").wait_for(timeout=15_000)
    uhi.locator("tr[data-slo=availability]").wait_for(timeout=20_000)
    recording = Recording(page)
    recording.frame(2500)  # v2 champion, just promoted: the history says so

    with httpx.Client(base_url=server.url, timeout=10) as client:
        predicted = client.post("/v1/uhi/predict", json=LEGACY_BODY).json()["prediction"]
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for _ in range(FEEDBACK_ROWS):
            body = {"features": LEGACY_BODY, "observed": predicted + REGRESSED_MAE}
            assert client.post("/v1/uhi/feedback", json=body, headers=headers).status_code == 201
    _wait_for_verdict(page, "SLO breached")
    live = uhi.locator("[data-testid=live-error-uhi] [data-testid=live-error-value]")
    assert float(live.inner_text()) == pytest.approx(REGRESSED_MAE)
    uhi.scroll_into_view_if_needed()
    recording.frame(3000)  # the live error of v2 breaches its objective

    page.fill("#admin-reason", "v2 runs 3 K off the ground truth")
    uhi.locator("[data-action=rollback]").scroll_into_view_if_needed()
    recording.frame(1500)
    uhi.locator("[data-action=rollback]").click()
    page.wait_for_function(
        "(v) => document.querySelector('#service-uhi [data-testid=champion-version]')"
        ".innerText === 'v' + v",
        arg=first,
        timeout=15_000,
    )
    assert f"v{second} → v{first}" in uhi.locator("[data-field=result]").inner_text()
    recording.frame(2000)  # one click: v1 is champion again
    wait_until(lambda: _served_uhi_version(server.url) == first, 10, "API serves the rollback")
    uhi.locator("[data-field=history] tr.is-rollback").first.wait_for(timeout=10_000)
    page.wait_for_function(  # the SLO now judges v1, which no bad ground truth was about
        "() => document.querySelector('#service-uhi [data-field=slo-verdict]')"
        ".innerText !== 'SLO breached'",
        timeout=40_000,
    )
    uhi.locator("[data-field=history]").scroll_into_view_if_needed()
    recording.frame(3500)
    recording.save(screenshots / "demo-rollback.webp")
    assert_offline_and_clean(watch)
