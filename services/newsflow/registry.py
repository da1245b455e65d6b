"""The Prometheus registry of a service process: its own metrics and the process's.

Each service keeps its metrics in a registry of its own (not prometheus_client's global one, which
tests and `make run` would share between services); the process collectors the global registry
has are added here, so that `process_resident_memory_bytes` (against a container's memory limit)
and `process_start_time_seconds` (restarts) are scraped with the rest.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector


def service_registry() -> CollectorRegistry:
    """Return a new registry holding the process's memory, CPU, start time and Python version."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
