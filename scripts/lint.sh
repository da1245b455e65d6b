#!/usr/bin/env bash
# ruff (lint + format check) and mypy --strict over services/ as the `newsflow` package.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check services tests bench
.venv/bin/ruff format --check -q services tests bench
shim=.cache/typecheck
mkdir -p "$shim" && ln -sfn ../../services "$shim/newsflow"
MYPYPATH=$shim .venv/bin/mypy -p newsflow
