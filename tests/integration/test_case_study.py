"""``terraops report case-study``: each study regenerated on a tiny city, its text checked
against the numbers of the run it came from.

The city (160 px of 4 m) is generated here; the models are the session's tiny
trained uhi and flood (``tests/conftest.py``). The check is generic: every
decimal number the page prints (outside the model card's own text) must be a
number of ``facts.json`` — the JSON the same run wrote — rounded as printed,
and the key-figures and plan tables are compared with the facts row by row.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from serving_support import TrainedHome
from terraops.cli.main import app as cli
from terraops.pipelines.reports.flood_text import FLOOD_KEY_FIGURES
from terraops.pipelines.reports.heat_text import HEAT_KEY_FIGURES
from terraops.pipelines.reports.text import lookup
from terraops.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:\s?%)?")
MAX_FIGURE_BYTES = 300_000


@pytest.fixture(scope="module")
def small_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from terraops.pipelines.scenes.generate import generate_scene

    out = tmp_path_factory.mktemp("city") / "small-city"
    generate_scene(out, seed=11, size=160, resolution=4.0, morphology="dense")
    return out


def _numbers(value: Any) -> Iterator[float]:
    """Every number in a JSON document (bools excluded)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)


def _page_text(page: str) -> str:
    """The page without its command line and the model card's quoted limitations."""
    kept, quoting = [], False
    for line in page.splitlines():
        if line.startswith("From the model card"):
            quoting = True
        elif line.startswith("## "):
            quoting = False
        if not quoting and not line.startswith(">"):
            kept.append(line)
    return "\n".join(kept)


def _unexplained_numbers(page: str, facts: dict[str, Any]) -> list[str]:
    """Numbers printed on the page that no fact, rounded as printed, accounts for."""
    values = list(_numbers(facts))
    missing = []
    for token in NUMBER.findall(_page_text(page)):
        percent = token.endswith("%")
        text = token.rstrip("% ").strip()
        digits = len(text.split(".")[1])
        printed = float(text)
        scale = 100.0 if percent else 1.0
        if not any(abs(round(v * scale, digits) - printed) < 1e-9 for v in values):
            missing.append(token)
    return missing


def _key_figures(page: str) -> dict[str, float]:
    section = page.split("## Key figures", 1)[1]
    rows = re.findall(r"^\| ([^|]+?) \| ([-+\d.]+) [^|]*\|$", section, flags=re.M)
    return {label: float(value) for label, value in rows}


def _run(settings: Settings, study: str, scene: Path, out: Path, version: int) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "case-study",
            study,
            "--scene",
            str(scene),
            "--out",
            str(out),
            "--version",
            str(version),
            "--json",
        ],
        obj=settings,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _check_page(out: Path, key_figures: Any) -> tuple[str, dict[str, Any]]:
    page = (out / "index.md").read_text()
    facts = json.loads((out / "facts.json").read_text())
    assert _unexplained_numbers(page, facts) == []
    printed = _key_figures(page)
    assert set(printed) == {label for label, _, _ in key_figures}
    for label, path, _ in key_figures:
        assert printed[label] == pytest.approx(round(lookup(facts, path), 2), abs=1e-9), label
    for name in re.findall(r"\]\(([\w-]+\.png)\)", page):
        figure = out / name
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert figure.stat().st_size <= MAX_FIGURE_BYTES, name
    return page, facts


def test_heat_case_study_text_quotes_its_run(
    home_settings: Settings, trained_home: TrainedHome, small_city: Path, tmp_path: Path
) -> None:
    out = tmp_path / "heat"
    summary = _run(home_settings, "heat", small_city, out, trained_home.uhi_versions[0])
    assert summary["figures"] == ["hotspots.png", "why.png", "plan.png", "cooling.png"]
    page, facts = _check_page(out, HEAT_KEY_FIGURES)
    assert facts["model"]["version"] == trained_home.uhi_versions[0]

    # The plan is drawn from the city: trees on several streets and one lot made a park,
    # and each intervention's row on the page is the what-if's.
    kinds = [p["intervention"] for p in facts["plan"]]
    assert kinds.count("tree_planting") >= 2 and kinds.count("park") == 1
    for row in facts["whatif"]["interventions"]:
        line = next(r for r in page.splitlines() if r.startswith(f"| {row['id']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[2]) == pytest.approx(round(row["area_ha"], 2), abs=1e-9)
        assert float(cells[3]) == pytest.approx(round(row["mean_delta"], 2), abs=1e-9)
        assert row["mean_delta"] < 0, "planting trees cools the ground it covers"
    cooling = facts["cooling"]
    assert cooling["cooling_k_ha"] > 0 and cooling["planted_ha"] > 0

    # Regenerating replaces the page with the new run's, never mixing two runs.
    again = _run(home_settings, "heat", small_city, out, trained_home.uhi_versions[0])
    assert again["page"] == summary["page"]
    _check_page(out, HEAT_KEY_FIGURES)


def test_flood_case_study_text_quotes_its_run(
    home_settings: Settings, trained_home: TrainedHome, small_city: Path, tmp_path: Path
) -> None:
    out = tmp_path / "flood"
    summary = _run(home_settings, "flood", small_city, out, trained_home.flood_versions[0])
    assert summary["applies"] is True
    assert summary["figures"] == ["exposure.png", "plan.png", "effect.png"]
    _, facts = _check_page(out, FLOOD_KEY_FIGURES)
    assert set(facts["exposure"]) == {"30", "100"}
    heavy, light = facts["exposure"]["100"], facts["exposure"]["30"]
    assert heavy["flooded_area_ha"] >= light["flooded_area_ha"], "more rain never floods less"
    assert [e["rainfall_mm"] for e in facts["effect"]] == [30.0, 100.0]
    assert facts["footprints"]["kind"] == "spectral"  # no segmentation champion in this home
    assert all(p["intervention"] == "depave" for p in facts["plan"]) and facts["plan"]


def test_flood_case_study_says_why_it_does_not_apply_without_elevation(
    home_settings: Settings, trained_home: TrainedHome, small_city: Path, tmp_path: Path
) -> None:
    city = tmp_path / "no-dem"
    shutil.copytree(small_city, city)
    manifest = json.loads((city / "scene.json").read_text())
    manifest["layers"] = {k: v for k, v in manifest["layers"].items() if k != "dem"}
    (city / "scene.json").write_text(json.dumps(manifest))
    out = tmp_path / "flood"
    summary = _run(home_settings, "flood", city, out, trained_home.flood_versions[0])
    assert summary["applies"] is False and summary["figures"] == []
    page = (out / "index.md").read_text()
    assert "no elevation layer" in page
    assert _unexplained_numbers(page, json.loads((out / "facts.json").read_text())) == []


def test_case_study_refuses_to_replace_a_folder_it_did_not_write(
    home_settings: Settings, small_city: Path, tmp_path: Path
) -> None:
    out = tmp_path / "docs"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    result = CliRunner().invoke(
        cli,
        ["report", "case-study", "heat", "--scene", str(small_city), "--out", str(out)],
        obj=home_settings,
    )
    assert result.exit_code != 0
    assert "not a case study" in result.output
    assert (out / "notes.md").read_text() == "mine"
