"""Prometheus metrics of one service instance, in a registry of its own (nothing global at import)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.core.results import STAGES

# Latency buckets (seconds) from 1 ms to 60 s: short windows of small models to long sequences on the full one.
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FRAME_OUTCOMES = ("received", "answered", "skipped")


class Metrics:
    """What the core records: requests by outcome, per-stage latency, batches, queue depth, work done, and
    streams: how many are open, and their frames received, answered and skipped (never answered)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "motionlift_requests",
            "Lift requests by protocol (rest, grpc) and outcome (ok, an error code, cancelled)",
            ["protocol", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "motionlift_request_stage_seconds", "Time per request stage", ["stage"], buckets=SECONDS, registry=r
        )
        self.batch_size = Histogram(
            "motionlift_batch_size",
            "Windows per model call",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "motionlift_model_compute_seconds", "Model compute time per batch", buckets=SECONDS, registry=r
        )
        self.windows = Counter("motionlift_windows", "Windows run by the model", registry=r)
        self.frames = Counter("motionlift_frames", "Frames run by the model (window frames, flip included)", registry=r)
        self.queue_depth = Gauge("motionlift_queue_depth", "Windows waiting for a batch", registry=r)
        self.ready = Gauge("motionlift_ready", "1 when the model is loaded and serving", registry=r)
        self.streams = Gauge("motionlift_streams_active", "LiftStream calls open", registry=r)
        self.stream_frames = Counter(
            "motionlift_stream_frames",
            "Stream frames (one track in one video frame) by outcome: received, answered, skipped (never answered)",
            ["outcome"],
            registry=r,
        )
        for stage in STAGES:
            self.latency.labels(stage)  # export every stage from the start, even before the first request
        for outcome in FRAME_OUTCOMES:
            self.stream_frames.labels(outcome)

    def watch(self, *, queue_depth: Callable[[], float], ready: Callable[[], float]) -> None:
        """Read the queue depth and readiness when scraped (always current, no bookkeeping)."""
        self.queue_depth.set_function(queue_depth)
        self.ready.set_function(ready)

    def on_batch(self, size: int, frames: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.windows.inc(size)
        self.frames.inc(frames)

    def on_request(self, protocol: str, outcome: str, stages_ms: dict[str, float] | None = None) -> None:
        self.requests.labels(protocol, outcome).inc()
        for stage, ms in (stages_ms or {}).items():
            self.latency.labels(stage).observe(ms / 1000)

    def render(self) -> bytes:
        """The text exposition format."""
        return bytes(generate_latest(self.registry))
