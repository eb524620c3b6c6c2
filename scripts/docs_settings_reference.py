"""The configuration page of the docs site: every ``TERRAOPS_*`` setting, read from ``Settings``.

Generated from the pydantic model's fields (name, type, default, description),
so a setting added to :class:`terraops.settings.Settings` appears at the next
``make docs`` and a changed default cannot be left stale in prose. Run alone,
it prints the markdown (or writes ``--out FILE``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from terraops.settings import Settings

INTRO = """# Configuration

Every setting can be given as an environment variable with the `TERRAOPS_` prefix
(`TERRAOPS_HOME=/data/terraops terraops serve`). The entry points (the CLI and the
HTTP server) read them once at start-up; an unreadable value is reported by the
command that needs it, naming the variable. This table is generated from the
settings class (`terraops.settings.Settings`) when the site is built.
"""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type(annotation: Any) -> str:
    """``str | None`` rather than ``typing.Optional[str]``; secrets shown as ``secret``."""
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"\b(typing|pathlib|pydantic\.types)\.", "", text)
    return text.replace("SecretStr", "secret").replace("NoneType", "None")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def settings_reference_markdown() -> str:
    """The configuration table as one markdown page."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    lines = [
        INTRO,
        "| setting | environment variable | type | default | what it does |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        lines.append(
            f"| `{name}` | `{(prefix + name).upper()}` | `{_cell(_type(field.annotation))}` "
            f"| {_cell(_default(field))} | {_cell(field.description or '')} |"
        )
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write here instead of printing")
    args = parser.parse_args()
    text = settings_reference_markdown()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
