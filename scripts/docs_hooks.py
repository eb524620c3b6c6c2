"""MkDocs hooks of the docs site: the generated pages, and links written for the repository.

Pages generated at every build (never committed, so never stale):

* the CLI reference (from the Typer app), the HTTP API (from the OpenAPI schema,
  with the schema itself), the configuration table (from the settings class);
* the tour notebook, executed, as a page with its figure;
* the repository's root documents (SLO, rollback runbook, security, benchmarks)
  as pages, read from the one file each, never copied into ``docs/``.

Links are written for the repository (a runbook links ``../../SLO.md``; the
benchmarks link ``docs/model_cards/...``), so each page's relative links are
resolved against the page's place in the repository and rewritten to the site
page that holds the target. A link to a repository file that is not part of the
site (source code, a script) becomes plain text naming the path; a link to a
missing page still fails the strict build.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_cli_reference import cli_reference_markdown
from docs_http_reference import http_reference_markdown, openapi_schema
from docs_notebook import execute, render
from docs_settings_reference import settings_reference_markdown

REPO = Path(__file__).resolve().parent.parent
ROOT_PAGES = {
    "SLO.md": "operations/slo.md",
    "RUNBOOK_ROLLBACK.md": "operations/rollback.md",
    "SECURITY.md": "operations/security.md",
    "BENCHMARKS.md": "benchmarks.md",
}
NOTEBOOKS = ("notebooks/tour.ipynb",)
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)(\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")

_site_pages: set[str] = set()
_repo_path_of: dict[str, str] = {}


def _add(
    files: Files, config: Any, src_uri: str, content: str | bytes, repo_path: str | None = None
) -> None:
    """Add one generated file; ``repo_path``: where its text lives in the repository."""
    existing = files.get_file_from_path(src_uri)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, src_uri, content=content))
    _repo_path_of[src_uri] = repo_path or f"docs/{src_uri}"


def on_config(config: Any) -> Any:
    """List the case studies (``docs/case-studies/*.md``, each made by a command) in the nav."""
    studies = sorted((REPO / "docs" / "case-studies").glob("*.md"))
    if studies and not any("Case studies" in item for item in config.nav if isinstance(item, dict)):
        entries = [f"case-studies/{study.name}" for study in studies]
        config.nav.insert(2, {"Case studies": entries})
    return config


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages to the site's files."""
    _repo_path_of.clear()
    _add(files, config, "reference/cli.md", cli_reference_markdown())
    _add(files, config, "reference/configuration.md", settings_reference_markdown())
    schema = openapi_schema()
    _add(files, config, "reference/http.md", http_reference_markdown(schema))
    _add(files, config, "reference/openapi.json", json.dumps(schema, indent=2))
    for root_file, page in ROOT_PAGES.items():
        _add(files, config, page, (REPO / root_file).read_text(encoding="utf-8"), root_file)
    for notebook in NOTEBOOKS:
        stem = posixpath.splitext(notebook)[0]
        rendered = render(execute(REPO / "docs" / notebook), posixpath.basename(stem))
        _add(files, config, f"{stem}.md", rendered.markdown)
        for name, png in rendered.images.items():
            _add(files, config, f"{stem}_files/{name}", png)
    _site_pages.clear()
    _site_pages.update(file.src_uri for file in files)
    return files


def _site_target(repo_target: str) -> str | None:
    """The site file holding a repository path, or None when the site has no such file."""
    if repo_target in ROOT_PAGES:
        return ROOT_PAGES[repo_target]
    if not repo_target.startswith("docs/"):
        return None
    inside = repo_target[len("docs/") :].rstrip("/")
    for candidate in (inside, f"{inside}/index.md", f"{inside}/README.md"):
        if candidate in _site_pages:
            return candidate
    return inside  # missing: left for the strict build to report


def _rewrite(match: re.Match[str], page_uri: str) -> str:
    bang, text, target, title = match.groups()
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return match.group(0)
    path, _, anchor = target.partition("#")
    if not path:
        return match.group(0)
    repo_page = _repo_path_of.get(page_uri, f"docs/{page_uri}")
    repo_target = posixpath.normpath(posixpath.join(posixpath.dirname(repo_page), path))
    site_target = _site_target(repo_target)
    if site_target is None:
        return text if bang else f"{text} (`{repo_target}`)" if text != repo_target else text
    relative = posixpath.relpath(site_target, posixpath.dirname(page_uri) or ".")
    suffix = f"#{anchor}" if anchor else ""
    return f"{bang}[{text}]({relative}{suffix}{title or ''})"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Rewrite each relative link (outside code blocks) to the site page holding it."""
    lines, in_fence = [], False
    for line in markdown.split("\n"):
        if FENCE.match(line.lstrip()):
            in_fence = not in_fence
        if not in_fence:
            line = LINK.sub(lambda match: _rewrite(match, page.file.src_uri), line)
        lines.append(line)
    return "\n".join(lines)
