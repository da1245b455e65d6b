#!/usr/bin/env bash
# make audit: known vulnerabilities of every pinned dependency (requirements.lock), with pip-audit
# in a venv of its own (.cache/audit) against PyPI's advisory data. Needs the network; exits
# non-zero when a pinned version has a known vulnerability. Packages the index cannot describe are
# listed as not audited (not as safe).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/audit
if [ ! -x "$venv/bin/pip-audit" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "pip-audit==2.10.1"
fi
exec "$venv/bin/pip-audit" -r requirements.lock --no-deps --disable-pip --vulnerability-service pypi \
  --progress-spinner off "$@"
