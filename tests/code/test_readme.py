"""The README is the product's front page: short, every link and picture real, and every
measured figure it quotes the same as in its one source (BENCHMARKS.md or a model card)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_LINES = 200

#: A measured figure: a number with a unit of time, temperature, share or speed-up.
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ms|s|K|%|×|Mpx/s|rows/s)(?!\w)")
#: Words of the project's own bookkeeping that a reader of the front page has no use for.
INTERNAL = re.compile(r"\b(?:issue \d+|the brief|brief target|internal target)\b", re.I)


def _prose(text: str) -> str:
    """The README without its code blocks (commands are not figures)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _sources() -> str:
    cards = sorted((ROOT / "docs" / "model_cards").glob("*.md"))
    return "\n".join(p.read_text() for p in [ROOT / "BENCHMARKS.md", *cards])


def test_readme_fits_one_front_page() -> None:
    assert len(README.read_text().splitlines()) <= MAX_LINES


def test_readme_starts_with_the_two_commands() -> None:
    head = "\n".join(README.read_text().splitlines()[:25])
    assert "make demo" in head and "make test" in head


@pytest.mark.parametrize(
    "target",
    sorted(
        {
            m.group(1).split("#")[0]
            for m in re.finditer(r"\]\(([^)\s]+)\)", README.read_text())
            if not m.group(1).startswith(("http://", "https://", "#"))
        }
    ),
)
def test_every_local_link_and_picture_exists(target: str) -> None:
    assert (ROOT / target).exists(), f"README links to {target}, which is not in the repository"


def test_every_quoted_figure_has_its_source() -> None:
    sources = _sources()
    missing = [f for f in FIGURE.findall(_prose(README.read_text())) if f not in sources]
    assert not missing, f"figures quoted in the README but in no BENCHMARKS.md or card: {missing}"


def test_no_internal_vocabulary() -> None:
    assert not INTERNAL.findall(README.read_text())
