#!/usr/bin/env bash
# ruff (lint + format check) and mypy --strict over the `newsflow` package (services/newsflow/).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check services tests bench
.venv/bin/ruff format --check -q services tests bench
.venv/bin/mypy
