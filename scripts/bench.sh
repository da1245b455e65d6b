#!/usr/bin/env bash
# make bench: every benchmark on the shared data, results appended to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
scripts/bootstrap.sh
.venv/bin/python bench/extraction_eval.py "$data" --record
OMP_NUM_THREADS=1 .venv/bin/python bench/ner_bench.py "$data" --record
.venv/bin/python bench/story_eval.py "$data" --record
.venv/bin/python bench/ner_eval.py "$data" --record
.venv/bin/python bench/dedup_cost.py --record
.venv/bin/python bench/producer_bench.py --record
# Inputs that once held a worker for minutes, at two sizes (about 1 minute).
OMP_NUM_THREADS=1 .venv/bin/python bench/stall_inputs.py --record
# The NER model's memory over a stream of new names (about 2 minutes; 100,000 articles: 20).
.venv/bin/python bench/memory_soak.py "$data" --articles 10000 --record
# The writer's memory over stories that never end (about 1 minute; 100,000 articles: 5).
.venv/bin/python bench/running_stories.py --articles 20000 --record
# Throughput, scale-out, latency, memory and the profile, at a small size (about 8 minutes);
# a larger run: --size 3000 --soak-seconds 1800.
.venv/bin/python bench/throughput_bench.py "$data" --size 300 --soak-seconds 120 --record
# Not here, it takes about 10 minutes: .venv/bin/python bench/delivery_bench.py --record
