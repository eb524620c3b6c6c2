"""The documentation site builds strictly, offline, with its generated pages complete.

One real ``mkdocs build --strict`` (what ``make docs`` runs) into a temporary
folder: a broken link, a docstring the API reference cannot render or a cell of
the tour notebook that fails makes the build, and so this test, fail. The
other tests read the built site.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from terraops.settings import Settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-8000:]
    return out


def page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def test_the_cli_reference_lists_every_command_of_the_typer_app(site: Path) -> None:
    text = page(site, "reference/cli")
    for command in ("terraops train", "terraops whatif", "terraops scene generate", "--scenario"):
        assert command in text


def test_the_configuration_table_has_every_terraops_setting(site: Path) -> None:
    text = page(site, "reference/configuration")
    missing = [name for name in Settings.model_fields if f"TERRAOPS_{name.upper()}" not in text]
    assert not missing


def test_the_http_reference_and_schema_come_from_the_app(site: Path) -> None:
    text = page(site, "reference/http")
    assert "/v1/{service}/whatif" in text and "/v1/uhi/predict/batch" in text
    assert '"openapi"' in (site / "reference" / "openapi.json").read_text(encoding="utf-8")


def test_the_tour_notebook_ran_at_build_and_its_plot_is_on_the_page(site: Path) -> None:
    text = page(site, "notebooks/tour")
    assert "mean change" in text and "interval" in text  # the what-if cell's printed answer
    assert "tour-1.png" in text
    assert (site / "notebooks" / "tour_files" / "tour-1.png").stat().st_size > 1000


def test_root_documents_are_pages_with_their_links_resolved(site: Path) -> None:
    for root_file, path in (("SLO.md", "operations/slo"), ("BENCHMARKS.md", "benchmarks")):
        first_line = (REPO / root_file).read_text(encoding="utf-8").splitlines()[0]
        assert first_line.lstrip("# ").split("`")[0].strip() in page(site, path)
    runbook = page(site, "runbooks/errors")
    assert "operations/slo/" in runbook  # ../../SLO.md in the repository


def test_no_page_loads_anything_from_outside(site: Path) -> None:
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, html
        assert 'src="http' not in text, html
        assert 'rel="stylesheet" href="http' not in text, html
        # Material fetches mermaid.js from unpkg for a page with a diagram: none may have one.
        assert 'class="mermaid"' not in text, html
