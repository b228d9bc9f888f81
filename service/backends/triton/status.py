"""What Triton answers, in our terms: its gRPC status codes on our error table, and its statistics counters.

Errors are mapped by status code, never by message text (messages change between Triton releases). The
tritonclient gRPC clients raise ``InferenceServerException`` whose ``status()`` is ``str(grpc.StatusCode.X)``,
i.e. ``"StatusCode.X"`` (tritonclient/grpc/_utils.py ``get_error_grpc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.errors import BackendError, DeadlineExceeded, LiftError, Overloaded, Unavailable

# Triton's status codes (core: TRITONSERVER_Error codes -> gRPC codes) and what a caller of ours should hear:
# - UNAVAILABLE: server shutting down, model not ready, connection refused/reset  -> 503, the model cannot serve
# - NOT_FOUND: unknown model or version (e.g. being (re)loaded)                    -> 503 as well
# - RESOURCE_EXHAUSTED: a full queue or a message over the size limit              -> 503 overloaded, retry later
# - DEADLINE_EXCEEDED: the per-call client timeout passed                          -> 504
# - everything else (INVALID_ARGUMENT, INTERNAL, UNKNOWN, ...): the gateway and the model disagree, or the model
#   failed; not the caller's fault (its input was validated before it was queued)  -> 500 backend error
_BY_CODE: dict[str, type[LiftError]] = {
    "UNAVAILABLE": Unavailable,
    "NOT_FOUND": Unavailable,
    "CANCELLED": Unavailable,
    "RESOURCE_EXHAUSTED": Overloaded,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
}

# Errors after which the endpoint's readiness is re-checked at once (and another endpoint may be tried).
ENDPOINT_ERRORS = frozenset({"UNAVAILABLE", "NOT_FOUND", "CANCELLED"})

# The usual cause of a TorchScript model that Triton cannot load: the file was written by a newer PyTorch than the
# libtorch inside the Triton image. docker/triton-pytorch.toml pairs each Triton release with its PyTorch image.
LIBTORCH_HINT = (
    "if the model was exported by another PyTorch than this Triton release's libtorch, export it with the "
    'paired PyTorch image (docker/triton-pytorch.toml, README "Triton")'
)


def status_code(exc: Exception) -> str:
    """The gRPC status name of a tritonclient error (``"UNAVAILABLE"``); ``"UNKNOWN"`` when it has none."""
    status = getattr(exc, "status", None)
    raw = status() if callable(status) else None
    return str(raw).rsplit(".", 1)[-1] if raw else "UNKNOWN"


def load_failure(index: Any, model: str, version: str = "") -> str | None:
    """Why a server cannot serve ``model`` (``version`` "" = any), read from its repository index
    (``RepositoryIndexResponse``, entries with name, version, state, reason): a version that failed to load (state
    UNAVAILABLE with Triton's reason, followed by ``LIBTORCH_HINT``), or a repository without the model. None when
    nothing failed: the model is loading, unloading, ready, or was unloaded on purpose."""
    named = [m for m in index.models if m.name == model]
    entries = [m for m in named if not version or m.version == version]
    if not entries and named:
        return f"its model repository has no version {version} of model {model!r}"
    if not entries:
        names = sorted({m.name for m in index.models})
        return f"its model repository has no model {model!r}" + (f" (it has {', '.join(names)})" if names else "")
    # Triton says "unloaded" of a version unloaded on purpose (explicit model control): not a failure.
    failed = [m for m in entries if m.state == "UNAVAILABLE" and m.reason and m.reason != "unloaded"]
    if not failed:
        return None
    reasons = "; ".join(f"version {m.version or '?'} failed to load: {m.reason}" for m in failed)
    return f"{reasons} ({LIBTORCH_HINT})"


def to_lift_error(exc: Exception, url: str) -> LiftError:
    """Our error for a Triton error raised by a call to ``url``; the message names the code, not Triton's text."""
    code = status_code(exc)
    kind = _BY_CODE.get(code, BackendError)
    retry = 1.0 if kind in (Unavailable, Overloaded) else None
    return kind(f"Triton at {url} answered {code}", retry_after_s=retry)


@dataclass(frozen=True)
class ServerStats:
    """Triton's own cumulative counters for the model, summed over servers (statistics extension:
    ``queue`` = waiting in Triton's scheduler, ``compute_*`` = copying inputs in, running, copying outputs out)."""

    requests: int = 0
    executions: int = 0
    queue_s: float = 0.0
    compute_input_s: float = 0.0
    compute_infer_s: float = 0.0
    compute_output_s: float = 0.0

    def __add__(self, other: ServerStats) -> ServerStats:
        return ServerStats(
            self.requests + other.requests,
            self.executions + other.executions,
            self.queue_s + other.queue_s,
            self.compute_input_s + other.compute_input_s,
            self.compute_infer_s + other.compute_infer_s,
            self.compute_output_s + other.compute_output_s,
        )

    def __sub__(self, other: ServerStats) -> ServerStats:
        return ServerStats(
            self.requests - other.requests,
            self.executions - other.executions,
            self.queue_s - other.queue_s,
            self.compute_input_s - other.compute_input_s,
            self.compute_infer_s - other.compute_infer_s,
            self.compute_output_s - other.compute_output_s,
        )

    @property
    def compute_s(self) -> float:
        return self.compute_input_s + self.compute_infer_s + self.compute_output_s

    @classmethod
    def from_response(cls, response: Any) -> ServerStats:
        """From a ``ModelStatisticsResponse`` (``get_inference_statistics``), every version summed."""
        total = cls()
        for model in response.model_stats:
            s = model.inference_stats
            total += cls(
                int(s.success.count),
                int(model.execution_count),
                s.queue.ns / 1e9,
                s.compute_input.ns / 1e9,
                s.compute_infer.ns / 1e9,
                s.compute_output.ns / 1e9,
            )
        return total
