#!/usr/bin/env bash
# Quality floors: the fast benchmarks on the dev data, failing below bench/floors.json
# (extraction F1, same-story F1 and stream purity, copies F1, NER F1). About a minute and a half. Run by `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${NEWSFLOW_QUALITY_DATA:-../shared/data}}
if [ ! -d "$data/extraction-dev" ] || [ ! -d "$data/stories-dev" ] || [ ! -d "$data/ner-dev" ]; then
  echo "quality floors: skipped, no dev data at $data (set NEWSFLOW_QUALITY_DATA)" >&2
  exit 0
fi
.venv/bin/python bench/extraction_eval.py "$data" --check
# float32 embeddings: the same story figures on every CPU (int8 ones move with the CPU, see floors.json).
.venv/bin/python bench/story_eval.py "$data" --check --embed-precision float32
.venv/bin/python bench/ner_eval.py "$data" --check
