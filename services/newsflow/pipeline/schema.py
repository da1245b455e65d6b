"""The output contract: the JSON Schemas of schemas/, shipped in the package, and validation against them.

    newsflow-schema                     # the schemas' names and versions
    newsflow-schema enriched-article    # one schema, as JSON

The files live in the repository's `schemas/`; `services/newsflow/schemas` links to it, so an
installed package (the image, a wheel) carries the same files and finds them with
importlib.resources, wherever it is installed.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from newsflow.pipeline import jsonio
from newsflow.settings import CommandLine

SUFFIX = ".schema.json"


def names() -> list[str]:
    """Return the names of the shipped schemas (enriched-article, story, dead-letter)."""
    folder = resources.files("newsflow") / "schemas"
    return sorted(p.name.removesuffix(SUFFIX) for p in folder.iterdir() if p.name.endswith(SUFFIX))


def schema_bytes(name: str) -> bytes:
    """Return one schema's file; FileNotFoundError for an unknown name."""
    if name not in names():
        raise FileNotFoundError(f"no schema {name!r} (there are: {', '.join(names())})")
    return (resources.files("newsflow") / "schemas" / f"{name}{SUFFIX}").read_bytes()


def _closed(node: Any) -> Any:
    """Return a copy of a schema in which every object with listed properties allows no others."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    closed = {k: _closed(v) for k, v in node.items()}
    if "properties" in closed and "additionalProperties" not in closed:
        closed["additionalProperties"] = False
    return closed


@cache
def validator(name: str, strict: bool = True) -> Draft202012Validator:
    """Return a validator for schemas/<name>.schema.json (formats such as date-time are checked).

    The published schemas let objects carry properties they do not list, so that a consumer's
    1.x schema accepts later 1.x records. What this pipeline writes is held to the letter
    (`strict`): a field the schema does not describe is an error here, not an addition.
    """
    schema = jsonio.loads(schema_bytes(name))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(_closed(schema) if strict else schema, format_checker=FormatChecker())


def schema_errors(name: str, record: Any, strict: bool = True) -> list[str]:
    """Return every violation of the named schema, as 'path: message' strings (empty when valid)."""
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator(name, strict).iter_errors(record)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = CommandLine(
        prog="newsflow-schema",
        description="Print the output contract: the JSON Schemas of the enriched, story and dead-letter records.",
    )
    parser.add_argument("name", nargs="?", help="a schema to print (without a name: list them)")
    args = parser.parse_args(argv)
    if args.name is None:
        for name in names():
            schema = jsonio.loads(schema_bytes(name))
            version = schema.get("x-schema-version", "")
            sys.stdout.write(f"{name}  {version}  {schema.get('$id', '')}  {schema.get('title', '')}\n")
        return 0
    try:
        sys.stdout.write(schema_bytes(args.name).decode())
    except FileNotFoundError as exc:
        sys.stderr.write(f"newsflow-schema: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
