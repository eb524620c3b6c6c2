"""The layers the README promises, checked on the parsed source of ``src/terraops``.

domain (pure, no I/O) → adapters (the only code touching disk, network, MLflow)
→ pipelines → entry points (``api/``, ``cli/``); ``models/`` is the network code
MLflow pickles, ``services/`` the service declarations. Nothing here imports
terraops: every rule reads the syntax tree, module-level *and* function-level
imports alike, so a lazy import cannot hide a layer violation or a cycle.

A failure names each offending module and line.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "terraops"

LAZY_THIRD_PARTY: dict[str, str] = {
    "torch": "optional `segment` extra; ~1.3 s to import",
    "onnx": "optional `segment` extra",
    "onnxruntime": "optional `segment` extra",
    "onnxscript": "optional `segment` extra (torch.onnx.export's exporter)",
    "mlflow": "~1.4 s to import: `terraops --help` and API startup must not pay it",
    "evidently": "~4 s to import; drift reports only",
    "great_expectations": "~3 s to import; data-quality gates only",
    "dask": "scale-out mode only",
    "distributed": "scale-out mode only (Dask's scheduler and workers)",
    "psycopg": "only with a PostgreSQL state-database URL",
    "matplotlib": "figures of model cards only; picks a GUI backend on import",
    "lightgbm": "~1.4 s to import (and libgomp); training and loading tabular models only",
    "pandas": "~0.6 s to import; tables only: declaring a service and listing models or "
    "layers must not pay it",
    "numba": "~0.5 s to import, and kernels compile on first call; tree kernels only",
    "pyarrow": "~0.3 s to import; Apache Arrow request bodies and Parquet files only",
    "titiler": "tile-server stack, ~1.4 s to import; tile routes only",
    "rio_tiler": "tile-server stack, ~1.2 s to import; tile rendering only",
    "morecantile": "tile-matrix sets of the tile stack; tile rendering only",
    "geopandas": "~0.4 s plus GDAL drivers; GeoPackage/GeoParquet files only",
    "scipy.stats": "~0.8 s to import (scipy.ndimage, used everywhere, is cheap); drift only",
    "rio_cogeo": "~0.4 s to import; COG writing and validation only",
    "prometheus_client": "its value class is fixed at import from PROMETHEUS_MULTIPROC_DIR, "
    "which `terraops serve` sets before the workers start",
    "uvicorn": "the ASGI server, needed by `terraops serve` only",
}
"""Third-party packages (or subpackages) that may be imported inside a function, and why.

Anything else is imported at module level, where a reader sees every dependency."""

FORBIDDEN_LAYERS: dict[str, frozenset[str]] = {
    "domain": frozenset(
        {"adapters", "pipelines", "api", "cli", "models", "services", "settings", "extras"}
    ),
    "models": frozenset({"adapters", "pipelines", "api", "cli"}),
    "services": frozenset({"adapters", "pipelines", "api", "cli"}),
    "adapters": frozenset({"pipelines", "api", "cli"}),
    "pipelines": frozenset({"api", "cli"}),
    "api": frozenset({"cli"}),
    "errors": frozenset(
        {"domain", "adapters", "pipelines", "api", "cli", "models", "services", "settings"}
    ),
}
"""Layers (``terraops.<layer>``) that code in a layer must not import."""

LAZY_TERRAOPS_LAYERS = frozenset({"cli"})
"""Layers whose functions may import terraops modules: each command loads its pipeline
on use, so that ``terraops --help`` stays fast."""

ENV_WRITERS = frozenset({"terraops.api.app"})
"""Modules outside ``cli/`` that may set process environment variables (the app factory)."""

_IO_CALL = re.compile(
    r"\brasterio\.open\(|\bmlflow\.[a-z_]+(\.[a-z_]+)*\(|\bMlflowClient\(|\.to_parquet\(|"
    r"read_parquet\(|\bpq\.(read|write)_table\("
)
_ENV_WRITE = re.compile(
    r"os\.environ(\[[^]]+\]\s*=|\.update\(|\.pop\(|\.setdefault\()|os\.putenv\("
)


@dataclass(frozen=True)
class ImportSite:
    """One imported name: who imports what, where, and whether inside a function."""

    module: str
    path: Path
    line: int
    target: str
    in_function: bool
    commented: bool
    type_only: bool = False
    """Under ``if TYPE_CHECKING:``: never executed, so it makes nothing heavy."""

    def __str__(self) -> str:
        where = "function-level" if self.in_function else "module-level"
        return f"{self.path.relative_to(SRC.parent)}:{self.line}: {where} import of {self.target}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    """``terraops.adapters.cog`` → ``adapters``; ``terraops.errors`` → ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted modules an import statement loads (``from pkg import mod`` names ``pkg.mod``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([node.module] if node.module else [])])
    if not (base == "terraops" or base.startswith("terraops.")):  # what a name may be
        return [f"{base}.{a.name}" for a in node.names]
    known = modules()
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for annotations only."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, in_function: bool, type_only: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function, type_only
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from _walk(child, inner, type_only or _is_type_checking_block(child))


def _has_comment(lines: list[str], lineno: int) -> bool:
    """A ``#`` comment on the import's line, or above its group of imports, says why."""
    if "#" in lines[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


@cache
def import_sites() -> tuple[ImportSite, ...]:
    sites = []
    for module, path in modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node, in_function, type_only in _walk(ast.parse(text), False):
            for target in _targets(module, path, node):
                commented = _has_comment(lines, node.lineno)
                sites.append(
                    ImportSite(module, path, node.lineno, target, in_function, commented, type_only)
                )
    return tuple(sites)


def internal(site: ImportSite) -> bool:
    return site.target == "terraops" or site.target.startswith("terraops.")


def third_party(site: ImportSite) -> bool:
    top = site.target.split(".")[0]
    return not internal(site) and top not in sys.stdlib_module_names and top != "__future__"


def lazy_allowed(target: str) -> bool:
    """Whether a third-party import (``pkg.mod.name``) is on :data:`LAZY_THIRD_PARTY`."""
    return any(target == key or target.startswith(key + ".") for key in LAZY_THIRD_PARTY)


@cache
def heavy_modules() -> frozenset[str]:
    """terraops modules that import an allowlisted package on import (directly or through
    another terraops module): what a light path may import only inside a function."""
    eager: dict[str, set[str]] = {m: set() for m in modules()}
    heavy = set()
    for site in import_sites():
        if site.in_function or site.type_only:
            continue
        if internal(site) and site.target in eager:
            eager[site.module].add(site.target)
        elif third_party(site) and lazy_allowed(site.target):
            heavy.add(site.module)
    changed = True
    while changed:
        changed = False
        for module, deps in eager.items():
            if module not in heavy and deps & heavy:
                heavy.add(module)
                changed = True
    return frozenset(heavy)


def _report(title: str, problems: Iterable[object]) -> None:
    found = sorted({str(p) for p in problems})
    assert not found, f"{title} ({len(found)}):\n  " + "\n  ".join(found)


# ---------------------------------------------------------------------- the rules


def import_cycles() -> list[list[str]]:
    """Strongly connected groups of terraops modules (Tarjan), function-level imports included."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for site in import_sites():
        own_package = site.module.startswith(site.target + ".")
        if site.target in graph and site.target != site.module and not own_package:
            graph[site.module].add(site.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = [stack.pop()]
            while group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    _report("import cycles", (" <-> ".join(c) for c in import_cycles()))


def test_inner_layers_never_import_outer_ones() -> None:
    violations = [
        f"{site} ({layer(site.module)}/ must not import {layer(site.target)}/)"
        for site in import_sites()
        if internal(site) and layer(site.target) in FORBIDDEN_LAYERS.get(layer(site.module), ())
    ]
    _report("layer violations", violations)


def lazy_internal_violations() -> list[str]:
    """Function-level terraops imports outside ``cli/`` that are neither heavy nor explained."""
    out = []
    for site in import_sites():
        if not (site.in_function and internal(site)):
            continue
        if layer(site.module) in LAZY_TERRAOPS_LAYERS:
            continue
        if site.target not in heavy_modules():
            out.append(f"{site} (light: import it at module level)")
        elif not site.commented:
            out.append(f"{site} (heavy: keep it lazy, with a comment saying why)")
    return out


def lazy_third_party_violations() -> list[str]:
    return [
        f"{site} (not in LAZY_THIRD_PARTY: import it at module level)"
        for site in import_sites()
        if site.in_function and third_party(site) and not lazy_allowed(site.target)
    ]


def test_function_level_imports_of_terraops_only_in_cli_or_of_heavy_modules() -> None:
    _report("function-level terraops imports", lazy_internal_violations())


def test_function_level_imports_of_third_party_only_from_the_allowlist() -> None:
    _report("function-level third-party imports", lazy_third_party_violations())


def _code_lines(module: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(modules()[module].read_text(encoding="utf-8").splitlines(), 1):
        yield number, line.split("#", 1)[0]


def _where(module: str, number: int, line: str) -> str:
    return f"{modules()[module].relative_to(SRC.parent)}:{number}: {line.strip()[:80]}"


def test_no_environment_writes_outside_the_entry_points() -> None:
    writes = [
        _where(module, number, line)
        for module in modules()
        if layer(module) != "cli" and module not in ENV_WRITERS
        for number, line in _code_lines(module)
        if _ENV_WRITE.search(line)
    ]
    _report("os.environ writes outside cli/ and api/app.py", writes)


def test_no_io_calls_outside_adapters() -> None:
    calls = [
        _where(module, number, line)
        for module in modules()
        if layer(module) != "adapters"
        for number, line in _code_lines(module)
        if _IO_CALL.search(line)
    ]
    _report("rasterio.open / MLflow / parquet calls outside adapters/", calls)
