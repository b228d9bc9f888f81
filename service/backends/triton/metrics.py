"""Prometheus metrics of the Triton backend: Triton's own queue/compute split next to the gateway's round trip, and
the servers in rotation.

The gateway's ``motionlift_model_compute_seconds`` is the Triton round trip per batch (network, serialisation,
Triton's queue and compute). These counters are Triton's statistics for the model (summed over servers, as last
polled by the backend), so ``rate(queue) / rate(requests)`` and ``rate(compute) / rate(executions)`` split that
round trip. They restart from zero with a Triton server, which Prometheus treats as a counter reset; a server
that leaves the rotation takes its share out of the sums, which looks the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from service.backends.triton.backend import TritonBackend


class TritonCollector:
    """Reads ``backend.last_stats`` when scraped (no I/O in the scrape)."""

    def __init__(self, backend: TritonBackend) -> None:
        self._backend = backend

    def collect(self) -> Iterator[Any]:
        s = self._backend.last_stats
        yield CounterMetricFamily("motionlift_triton_requests", "Requests Triton completed", value=s.requests)
        yield CounterMetricFamily(
            "motionlift_triton_executions", "Model executions (batches) on Triton", value=s.executions
        )
        yield CounterMetricFamily(
            "motionlift_triton_queue_seconds", "Time requests waited in Triton's scheduler", value=s.queue_s
        )
        compute = CounterMetricFamily(
            "motionlift_triton_compute_seconds", "Triton compute time by phase", labels=["phase"]
        )
        compute.add_metric(["input"], s.compute_input_s)
        compute.add_metric(["infer"], s.compute_infer_s)
        compute.add_metric(["output"], s.compute_output_s)
        yield compute
        servers = self._backend.servers
        yield GaugeMetricFamily(
            "motionlift_triton_servers", "Triton servers the URLs name now (listed or resolved)", value=len(servers)
        )
        yield GaugeMetricFamily(
            "motionlift_triton_servers_ready",
            "Triton servers in rotation: the model is ready there",
            value=sum(servers.values()),
        )

    def describe(self) -> Iterator[Any]:
        return iter(())  # no fixed description: registered with auto_describe registries without a scrape


def register(registry: CollectorRegistry, backend: TritonBackend) -> None:
    """Add the Triton counters to ``registry`` (e.g. the service's ``Metrics.registry``)."""
    registry.register(TritonCollector(backend))
