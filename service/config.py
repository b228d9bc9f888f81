"""Settings: read once at the edge (CLI flags over ``MOTIONLIFT_*`` environment variables), then passed in.

Every field's ``description`` is the help of its ``motionlift serve`` flag (``service.api.command`` derives the
flags from these fields), so a new setting needs only a line here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL = Path("model_repository/dstformer/1/model.pt")


class Settings(BaseSettings):
    """Every knob of the service. Each field is also the environment variable ``MOTIONLIFT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MOTIONLIFT_", extra="ignore")

    host: str = Field("127.0.0.1", description="address to bind REST and gRPC")
    port: int = Field(8000, ge=0, le=65535, description="REST port (0 = any free port)")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = any free port)")
    model: Path = Field(
        DEFAULT_MODEL,
        description="TorchScript model file written by `motionlift export`, or a name fetched by `motionlift pull`",
    )
    # Where names given to `model` are looked up (service/model/zoo/registry.py; README "Official weights").
    cache_dir: Path | None = Field(
        None, description="cache of `motionlift pull` (its registry of names); unset = $XDG_CACHE_HOME/motionlift"
    )
    # auto = the first GPU when torch sees one, else the CPU (service/backends/torchscript/runner.py).
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto (GPU if torch sees one), cpu, cuda or cuda:N"
    )
    # auto = the precision the model file was exported in; bf16/fp16 pay only with hardware support (README).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="compute precision; auto = as exported"
    )
    cuda_graphs: bool = Field(False, description="replay captured CUDA graphs for recurring batch shapes (CUDA only)")
    # 0 and 0: one CPU for the gateway, the rest for the model, split by the model's size (cpus.py, layout).
    threads: int = Field(
        0, ge=0, description="intra-op threads per model instance; 0 = the model's CPUs (usable - 1) / instances"
    )
    instances: int = Field(
        0,
        ge=0,
        le=64,
        description="model processes, each running one batch at a time; 0 = from the model's size: one per model "
        "CPU for a small model (<= 4 M parameters), else 1; on cuda, 1",
    )
    # service/backends/torchscript/cpus.py (placement) measures why; only `motionlift serve` pins its own threads.
    pin_cpus: bool = Field(
        True,
        description="CPU model: each model process on CPUs of its own, the gateway's threads on the rest "
        "(when at least one CPU is left for the gateway and no cgroup quota shares them)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    # json: one object per line with request and trace ids (service/telemetry/logs.py; README "Tracing and logs").
    log_format: Literal["text", "json"] = Field(
        "text", description="log lines: text, or json (one object per line, with request and trace ids)"
    )

    # Where the model runs: in this process (TorchScript file `model`) or on Triton servers (docs: README "Triton").
    backend: Literal["torchscript", "triton"] = Field(
        "torchscript", description="where the model runs: torchscript (model processes of this service) or triton"
    )
    # Triton gRPC addresses, all used together; comma-separated in the environment and on the CLI. A DNS name in
    # gRPC's form dns:///NAME:PORT is resolved again and again (a Kubernetes headless Service: README "Triton").
    triton_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:8001"],
        min_length=1,
        description="Triton gRPC addresses host:port or dns:///NAME:PORT (re-resolved), comma-separated, used together",
    )
    triton_resolve_s: float = Field(
        5.0, gt=0, description="how often dns:/// Triton URLs are resolved again: new servers join, gone ones leave"
    )
    triton_model: str = Field("dstformer", description="model name on Triton")
    triton_version: str = Field("", description="model version on Triton; empty = the server's policy (latest)")

    # Request limits.
    max_frames: int = Field(10_000, ge=1, description="longest sequence (frames) one track may have")
    max_tracks: int = Field(64, ge=1, description="most tracks (persons) in one request or stream")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="largest request body (REST) or message (gRPC)")
    read_timeout_s: float = Field(
        30.0, gt=0, description="a request's headers, and then its body, must each arrive within this (else 408)"
    )
    parse_workers: int = Field(
        1, ge=1, description="processes that read large REST bodies (over 1 MiB), one each at a time; more get 503"
    )
    max_connections: int = Field(1000, ge=1, description="open REST connections; beyond it new ones get 503")
    max_grpc_calls: int = Field(
        1000, ge=1, description="gRPC calls at once, streams included; beyond it RESOURCE_EXHAUSTED"
    )
    drain_timeout_s: float = Field(
        10.0, ge=0, description="on SIGTERM, how long work in flight may finish before it is cut off"
    )
    # A refused client that retries at once makes another refusal: the wait caps that storm (protocol.py says why).
    # 15, not 25: with the model on CPUs of its own, 25 ms put gRPC refusals over 50 ms at p99 (50.5-53.5 ms in
    # `motionlift bench overload` with h2load) and 15 ms did not (38-49 ms), at the same goodput.
    refusal_delay_ms: float = Field(
        15.0, ge=0, le=1000, description="how long a refusal at admission (503) waits before it is sent"
    )
    overlap: int | None = Field(
        None, ge=0, description="default overlap of consecutive windows in frames; unset = window // 4"
    )

    # Who may call (service/core/access.py; README "Security").
    api_keys: Path | None = Field(
        None, description="keys file of `motionlift keys` (hashes only); set: every call needs a key"
    )
    quota_frames_per_s: float = Field(
        0, ge=0, description="default frames per second per key (a key's own quota wins); 0 = no limit"
    )
    quota_streams: int = Field(0, ge=0, description="default streams open at once per key; 0 = no limit")
    tls_cert: Path | None = Field(None, description="TLS certificate chain (PEM) for REST and gRPC")
    tls_key: Path | None = Field(None, description="TLS private key (PEM) of --tls-cert")
    tls_client_ca: Path | None = Field(
        None, description="CA certificates (PEM): require client certificates they signed (mutual TLS)"
    )
    insecure: bool = Field(False, description="allow a non-loopback address without API keys or client certificates")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve /metrics on this port too, without a key (e.g. for Prometheus)"
    )
    docs: bool = Field(True, description="serve /docs and /openapi.json")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="browser origins allowed to call (CORS), comma-separated; none by default"
    )

    # Batching and backpressure.
    max_batch_size: int = Field(32, ge=1, description="most windows in one model call")
    max_batch_frames: int | None = Field(
        None, ge=1, description="most frames (windows x length) in one model call; unset = from the model's width"
    )
    max_queue_delay_ms: float = Field(2.0, ge=0, description="longest a window waits for a batch to fill")
    max_queued_windows: int = Field(1024, ge=1, description="queue bound; beyond it requests are rejected at once")
    timeout_s: float = Field(30.0, gt=0, description="per-request deadline in seconds (queue + compute)")

    @field_validator("triton_urls", "cors_origins", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value


EXPORTERS = ("otlp", "console")


class Tracing(BaseSettings):
    """The standard OpenTelemetry variables that decide whether and where this service sends spans (README "Tracing
    and logs"), read once at startup. Tracing is off unless ``OTEL_TRACES_EXPORTER`` names an exporter or an OTLP
    endpoint is set, and always off with ``OTEL_SDK_DISABLED=true``. The SDK reads the rest of the ``OTEL_*``
    variables itself, when the provider is made at startup (sampler, OTLP headers and timeouts, batch sizes,
    resource attributes)."""

    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore")

    sdk_disabled: bool = False
    traces_exporter: Annotated[list[str], NoDecode] = Field(default_factory=list)
    exporter_otlp_endpoint: str = ""
    exporter_otlp_traces_endpoint: str = ""
    exporter_otlp_protocol: Literal["grpc", "http/protobuf"] = "grpc"
    exporter_otlp_traces_protocol: Literal["grpc", "http/protobuf", ""] = ""
    service_name: str = "motionlift"

    @field_validator("traces_exporter", mode="before")
    @classmethod
    def _split_exporters(cls, value: Any) -> Any:
        names = [n.strip().lower() for n in value.split(",") if n.strip()] if isinstance(value, str) else value
        unknown = [n for n in names if n not in (*EXPORTERS, "none")]
        if unknown:
            raise ValueError(f"unknown exporter {unknown[0]!r}: this service has {', '.join(EXPORTERS)} and none")
        return names

    def exporters(self) -> list[str]:
        """The exporters to use, in order; empty: tracing is off."""
        if self.sdk_disabled:
            return []
        if self.traces_exporter:
            return [n for n in dict.fromkeys(self.traces_exporter) if n != "none"]
        return ["otlp"] if self.exporter_otlp_endpoint or self.exporter_otlp_traces_endpoint else []

    def protocol(self) -> str:
        """The OTLP transport: ``grpc`` (the Python SDK's default) or ``http/protobuf``."""
        return self.exporter_otlp_traces_protocol or self.exporter_otlp_protocol
