"""Settings: read once at the edge (CLI flags over ``MOTIONLIFT_*`` environment variables), then passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL = Path("model_repository/dstformer/1/model.pt")


class Settings(BaseSettings):
    """Every knob of the service. Each field is also the environment variable ``MOTIONLIFT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MOTIONLIFT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int = Field(50051, ge=0, le=65535)
    model: Path = DEFAULT_MODEL
    # auto = the first GPU when torch sees one, else the CPU (service/backends/runner.py, select_device).
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    # auto = the precision the model file was exported in; bf16/fp16 pay only with hardware support (README).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    cuda_graphs: bool = Field(False, description="replay captured CUDA graphs for recurring batch shapes")
    threads: int = Field(0, ge=0, description="intra-op threads for the model; 0 = one per core")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Where the model runs: in this process (TorchScript file `model`) or on Triton servers (docs: README "Triton").
    backend: Literal["torchscript", "triton"] = "torchscript"
    # Triton gRPC addresses (host:port), all used together; comma-separated in the environment and on the CLI.
    triton_urls: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1:8001"], min_length=1)
    triton_model: str = "dstformer"
    triton_version: str = Field("", description="model version on Triton; empty = the server's policy (latest)")

    # Request limits.
    max_frames: int = Field(10_000, ge=1, description="longest sequence (frames) one track may have")
    max_tracks: int = Field(64, ge=1, description="most tracks (persons) in one request")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="largest request body")
    overlap: int | None = Field(
        None, ge=0, description="default overlap of consecutive windows in frames; None = window // 4"
    )

    # Batching and backpressure.
    max_batch_size: int = Field(32, ge=1, description="most windows in one model call")
    max_batch_frames: int | None = Field(
        None, ge=1, description="most frames (windows x length) in one model call; None = from the model's width"
    )
    max_queue_delay_ms: float = Field(2.0, ge=0, description="longest a window waits for a batch to fill")
    max_queued_windows: int = Field(1024, ge=1, description="queue bound; beyond it requests are rejected")
    timeout_s: float = Field(30.0, gt=0, description="per-request deadline (queue + compute)")

    @field_validator("triton_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value
