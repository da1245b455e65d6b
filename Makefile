# Thin targets; the work is in scripts/. `make help` lists them.
.DEFAULT_GOAL := help
ARGS ?=

.PHONY: help run up down test lint quality audit bench kafka-start kafka-stop kafka-reset clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## the pipeline on seeds/ (or ARGS="path ...") on a local Kafka; writes out/enriched.jsonl
	@scripts/run.sh $(ARGS)

up: ## the long-running local stack: Kafka (data kept), worker, producer watching inbox/, stories view on :8080
	@scripts/up.sh

down: ## stop what make up started (ARGS=--reset also deletes its data)
	@scripts/down.sh $(ARGS)

test: ## set up, lint, start a test Kafka, run unit, contract, integration and e2e tests
	@scripts/test.sh $(ARGS)

lint: ## ruff and mypy only
	@scripts/bootstrap.sh && scripts/lint.sh

quality: ## the quality floors alone: extraction, story, copies and NER F1 on the dev data (DATA=../shared/data)
	@scripts/bootstrap.sh && scripts/quality.sh $(DATA)

audit: ## known vulnerabilities of the pinned dependencies (pip-audit; needs the network)
	@scripts/audit.sh

bench: ## quality, NER speed, dedup cost, producer, throughput/latency/memory benchmarks (DATA=../shared/data)
	@scripts/bench.sh $(or $(DATA),../shared/data)

kafka-start: ## start the local Kafka broker and leave it running
	@scripts/bootstrap.sh && deploy/local-kafka/kafka.sh start

kafka-stop: ## stop the local Kafka broker (its data is kept for the next kafka-start)
	@deploy/local-kafka/kafka.sh stop

kafka-reset: ## stop the local Kafka broker and delete its data
	@deploy/local-kafka/kafka.sh reset

clean: ## remove outputs and caches (not the venv)
	rm -rf out .cache/worker .pytest_cache .mypy_cache .ruff_cache
