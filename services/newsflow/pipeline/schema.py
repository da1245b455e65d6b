"""Validation against the JSON Schemas in schemas/ (the output contract)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from newsflow.pipeline import jsonio

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"


@cache
def validator(name: str) -> Draft202012Validator:
    """Return a validator for schemas/<name>.schema.json (formats such as date-time are checked)."""
    schema = jsonio.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def schema_errors(name: str, record: Any) -> list[str]:
    """Return every violation of the named schema, as 'path: message' strings (empty when valid)."""
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator(name).iter_errors(record)
    ]
