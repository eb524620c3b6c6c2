"""``terraops report case-study``: run a study on a scene and write its page, figures and facts.

Gathering (:mod:`~terraops.pipelines.reports.heat`,
:mod:`~terraops.pipelines.reports.flood`) runs the real commands' pipelines
and returns facts and grids; rendering (the ``*_text`` modules and
:mod:`~terraops.pipelines.reports.figures`) only formats them. The output
folder holds ``index.md``, its PNG figures and ``facts.json`` (every number
the text quotes, with the scenario that was run), written into a fresh
folder that replaces the old one in one step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters import atomic
from terraops.errors import InvalidInputError
from terraops.pipelines.progress import status_line
from terraops.pipelines.reports.figures import flood_figures, heat_figures
from terraops.pipelines.reports.flood import gather_flood
from terraops.pipelines.reports.flood_text import flood_markdown
from terraops.pipelines.reports.grids import Study
from terraops.pipelines.reports.heat import gather_heat
from terraops.pipelines.reports.heat_text import heat_markdown
from terraops.settings import Settings

STUDIES: dict[str, tuple[Callable[..., Study], Callable[..., str], Callable[..., list[Path]]]] = {
    "heat": (gather_heat, heat_markdown, heat_figures),
    "flood": (gather_flood, flood_markdown, flood_figures),
}
FACTS_FILE = "facts.json"
PAGE_FILE = "index.md"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _check_out(out: Path) -> None:
    """Only a folder this command wrote (or a new or empty one) may be replaced."""
    if out.exists() and any(out.iterdir()) and not (out / FACTS_FILE).is_file():
        raise InvalidInputError(
            f"{out} holds files that are not a case study; refusing to replace them",
            hint="give an empty or new folder with --out",
        )


def run_case_study(
    settings: Settings,
    study: str,
    scene_dir: Path,
    out: Path,
    *,
    version: int | None = None,
    command: str = "",
    city: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``study`` (heat or flood) on ``scene_dir``; write it to ``out``; return a summary.

    ``city``: the name the page's title gives the city (default: the scene's name).
    """
    if study not in STUDIES:
        raise InvalidInputError(
            f"unknown case study {study!r}", hint=f"use one of: {', '.join(STUDIES)}"
        )
    out = Path(out)
    _check_out(out)
    gather, markdown, draw = STUDIES[study]
    with status_line(progress, f"case study {study}") as say:
        say("running the model, the explanations and the what-if")
        result = gather(settings, Path(scene_dir), version=version)
        scene = result.facts["scene"]
        scene["title"] = city or scene["name"]
        say("drawing the figures and writing the page")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_directory_path(out) as staging:
            figures = [p.name for p in draw(result, staging)]
            text = markdown(result.facts, command or _command(study, scene_dir, out, version))
            atomic.atomic_write_text(staging / PAGE_FILE, text)
            facts = json.dumps(result.facts, indent=1, default=_json_default, ensure_ascii=False)
            atomic.atomic_write_text(staging / FACTS_FILE, facts)
    return {
        "study": study,
        "scene": result.facts["scene"]["name"],
        "applies": result.facts.get("applies", True),
        "out": str(out),
        "page": str(out / PAGE_FILE),
        "facts": str(out / FACTS_FILE),
        "figures": figures,
        "layers": result.facts.get("layers", []),
    }


def _command(study: str, scene_dir: Path, out: Path, version: int | None) -> str:
    pinned = f" --version {version}" if version is not None else ""
    return f"terraops report case-study {study} --scene {scene_dir} --out {out}{pinned}"
