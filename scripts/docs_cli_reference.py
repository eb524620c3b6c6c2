"""The CLI reference page of the docs site, generated from the Typer app itself.

Written from ``typer.main.get_command(app)`` so the page cannot drift from the
commands: a new option, a changed default or help text shows up at the next
``make docs``. Run alone, it prints the markdown (or writes ``--out FILE``).

Typer ships its own copy of click, so commands and parameters are read by what
they have (``commands``, ``opts``, ``param_type_name``), not by click's classes.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from terraops.cli.main import app

INTRO = """# CLI reference

Every `terraops` command, its arguments and options, generated from the command-line
application itself when the site is built. `terraops COMMAND --help` prints the same.
"""


def _cell(text: str) -> str:
    """One markdown table cell: no newlines, no pipes that would split the row."""
    return " ".join(text.split()).replace("|", "\\|")


def _default(param: Any) -> str:
    if param.required:
        return "required"
    default = param.default
    if default is None or default == () or default == []:
        return ""
    if callable(default):
        return "computed"
    if isinstance(default, bool) and getattr(param, "is_flag", False):
        return "on" if default else "off"
    return f"`{default}`"


def _name(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name or '').upper()}`"
    names = [*param.opts, *param.secondary_opts]
    return " / ".join(f"`{name}`" for name in names)


def _type(param: Any, context: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    return str(param.display_type(context)).strip("<>")


def _parameters(command: Any, context: Any) -> list[str]:
    rows = [
        param
        for param in command.params
        if not getattr(param, "hidden", False) and param.name != "help"
    ]
    if not rows:
        return []
    lines = ["| argument / option | type | default | what it is |", "|---|---|---|---|"]
    for param in rows:
        help_text = getattr(param, "help", None) or ""
        cells = [_name(param), _type(param, context), _cell(_default(param)), _cell(help_text)]
        lines.append(f"| {' | '.join(cells)} |")
    return [*lines, ""]


def _walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, command
    if hasattr(command, "commands"):
        for name in sorted(command.commands):
            sub = command.commands[name]
            if not sub.hidden:
                yield from _walk(sub, [*path, name])


def _section(path: list[str], command: Any, context: Any) -> list[str]:
    level = "#" * min(len(path) + 1, 4)
    lines = [f"{level} `{' '.join(path)}`", ""]
    help_text = (command.help or "").strip()
    if help_text:
        lines += [help_text.split("\f")[0].strip(), ""]
    pieces = command.collect_usage_pieces(context)
    lines += ["```text", f"{' '.join(path)} {' '.join(pieces)}".rstrip(), "```", ""]
    return lines + _parameters(command, context)


def cli_reference_markdown() -> str:
    """The whole CLI reference as one markdown page."""
    root = typer.main.get_command(app)
    lines = [INTRO]
    for path, command in _walk(root, ["terraops"]):
        with command.context_class(command, info_name=path[-1]) as context:
            lines += _section(path, command, context)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write here instead of printing")
    args = parser.parse_args()
    text = cli_reference_markdown()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
