"""Execute a Jupyter notebook and render it as a markdown page (code, printed output, plots).

The docs site runs the tour notebook at every build, so its numbers and plot are
from this build's code, and a change that breaks the Python API fails the build.
nbclient executes it in a kernel of the running interpreter (the project's venv);
the page gets the notebook's own markdown, each code cell, its standard output
and results as text, and each figure as a PNG beside the page. Standard error
(library log lines, progress bars) is left out of the page; an exception in a
cell stops the build with the cell's traceback.
"""

from __future__ import annotations

import argparse
import base64
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

CELL_TIMEOUT_S = 600


@dataclass
class RenderedNotebook:
    """The page's markdown and the images it links to (file name → PNG bytes)."""

    markdown: str
    images: dict[str, bytes] = field(default_factory=dict)


def execute(path: Path) -> Any:
    """Run every cell in a fresh kernel, in a temporary working folder."""
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="terraops-notebook-") as workdir:
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            resources={"metadata": {"path": workdir}},
        )
        client.execute()
    return notebook


def _fenced(text: str, language: str) -> list[str]:
    return [f"```{language}", text.rstrip("\n"), "```", ""]


def _outputs(cell: Any, stem: str, images: dict[str, bytes]) -> list[str]:
    lines: list[str] = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == "stdout":
            lines += _fenced(output.get("text", ""), "text")
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "image/png" in data:
                name = f"{stem}-{len(images) + 1}.png"
                images[name] = base64.b64decode(data["image/png"])
                lines += [f"![figure {len(images)}]({stem}_files/{name})", ""]
            elif "text/markdown" in data:
                lines += [data["text/markdown"], ""]
            elif "text/plain" in data:
                lines += _fenced(data["text/plain"], "text")
    return lines


def render(notebook: Any, stem: str) -> RenderedNotebook:
    """Markdown of an executed notebook; figures named ``{stem}_files/{stem}-N.png``."""
    images: dict[str, bytes] = {}
    lines: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            lines += [cell.source, ""]
        elif cell.cell_type == "code" and cell.source.strip():
            lines += _fenced(cell.source, "python")
            lines += _outputs(cell, stem, images)
    return RenderedNotebook("\n".join(lines), images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the page + figures")
    args = parser.parse_args()
    stem = args.notebook.stem
    page = render(execute(args.notebook), stem)
    (args.out / f"{stem}_files").mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(page.markdown, encoding="utf-8")
    for name, png in page.images.items():
        (args.out / f"{stem}_files" / name).write_bytes(png)


if __name__ == "__main__":
    main()
