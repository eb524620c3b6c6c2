"""The HTTP API page of the docs site, rendered from the app's own OpenAPI schema.

The schema comes from ``create_app(Settings(home=<empty temporary folder>))``
without starting a server, so the page lists exactly the routes, parameters and
models a running ``terraops serve`` declares (the same schema ``/docs`` shows),
and needs no network and no trained model. Run alone, it prints the markdown
(``--out FILE``) and can write the schema itself (``--schema FILE``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from terraops.api.app import create_app
from terraops.settings import Settings

METHODS = ("get", "post", "put", "patch", "delete")
INTRO = """# HTTP API

Every route of `terraops serve`, generated from the application's OpenAPI schema when
the site is built. A running server shows the same schema interactively at `/docs`
(Swagger UI) and `/redoc`, served offline; the raw schema is [openapi.json](openapi.json).
Errors are JSON with a message naming the field and how to fix it (`ErrorResponse`).
"""


def openapi_schema() -> dict[str, Any]:
    """The schema of an app built on an empty home: no model is needed to describe routes."""
    with tempfile.TemporaryDirectory(prefix="terraops-openapi-") as home:
        app = create_app(Settings(home=Path(home)), watch=False)
        return app.openapi()


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _schema_name(schema: dict[str, Any]) -> str:
    """A short name for a schema: its model (``$ref``), or its JSON type."""
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " or ".join(_schema_name(part) for part in schema[union])
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    return f"{schema.get('type', 'any')}"


def _parameters(operation: dict[str, Any]) -> list[str]:
    params = operation.get("parameters", [])
    if not params:
        return []
    lines = ["| parameter | in | required | type | description |", "|---|---|---|---|---|"]
    for param in params:
        schema = param.get("schema", {})
        lines.append(
            f"| `{param['name']}` | {param['in']} | {'yes' if param.get('required') else 'no'} "
            f"| {_schema_name(schema)} | {_cell(param.get('description', ''))} |"
        )
    return [*lines, ""]


def _body(operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return []
    kinds = [f"`{kind}` {_schema_name(body.get('schema', {}))}" for kind, body in content.items()]
    return [f"**Request body:** {', '.join(kinds)}", ""]


def _responses(operation: dict[str, Any]) -> list[str]:
    lines = ["| status | meaning | body |", "|---|---|---|"]
    for status, response in sorted(operation.get("responses", {}).items()):
        content = response.get("content", {})
        body = ", ".join(
            f"`{kind}` {_schema_name(part.get('schema', {}))}" for kind, part in content.items()
        )
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {body} |")
    return [*lines, ""]


def _operation(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    text = operation.get("description") or operation.get("summary") or ""
    if text:
        lines += [text.strip(), ""]
    return lines + _parameters(operation) + _body(operation) + _responses(operation)


def _schemas(schema: dict[str, Any]) -> list[str]:
    lines = ["## Models", ""]
    for name, model in sorted(schema.get("components", {}).get("schemas", {}).items()):
        lines += [f"### {name}", ""]
        if model.get("description"):
            lines += [model["description"].strip(), ""]
        properties = model.get("properties", {})
        if not properties:
            lines += [f"Type: {_schema_name(model)}.", ""]
            continue
        required = set(model.get("required", []))
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        for field, spec in properties.items():
            lines.append(
                f"| `{field}` | {_schema_name(spec)} | {'yes' if field in required else 'no'} "
                f"| {_cell(spec.get('description', ''))} |"
            )
        lines.append("")
    return lines


def http_reference_markdown(schema: dict[str, Any]) -> str:
    """The HTTP API as one markdown page: routes grouped by tag, then the models."""
    by_tag: dict[str, list[list[str]]] = defaultdict(list)
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag[tag].append(_operation(path, method, operation))
    lines = [INTRO]
    for tag in sorted(by_tag):
        lines += [f"## {tag}", ""]
        for operation_lines in by_tag[tag]:
            lines += operation_lines
    return "\n".join(lines + _schemas(schema))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the markdown here instead of printing")
    parser.add_argument("--schema", type=Path, help="also write the OpenAPI schema (JSON) here")
    args = parser.parse_args()
    schema = openapi_schema()
    if args.schema:
        args.schema.write_text(json.dumps(schema, indent=2), encoding="utf-8")
    text = http_reference_markdown(schema)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
