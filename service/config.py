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
    threads: int = Field(0, ge=0, description="intra-op threads per model instance; 0 = usable CPUs - 1")
    instances: int = Field(1, ge=1, le=64, description="model processes, each running one batch at a time")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")

    # Where the model runs: in this process (TorchScript file `model`) or on Triton servers (docs: README "Triton").
    backend: Literal["torchscript", "triton"] = Field(
        "torchscript", description="where the model runs: torchscript (model processes of this service) or triton"
    )
    # Triton gRPC addresses (host:port), all used together; comma-separated in the environment and on the CLI.
    triton_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:8001"],
        min_length=1,
        description="Triton gRPC addresses host:port, comma-separated, used together",
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
    refusal_delay_ms: float = Field(
        25.0, ge=0, le=1000, description="how long a refusal at admission (503) waits before it is sent"
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
