"""A real gRPC server speaking Triton's inference protocol (tritonclient's own ``GRPCInferenceService``), on
127.0.0.1 port 0, that records the metadata of every inference call: what a gateway sends Triton, seen where
Triton would see it. It serves the committed production config (``model_repository/dstformer/config.pbtxt``) and
answers ``2 x input``, as ``tests.fakes.FakeBackend`` does. For a real tritonserver, see ``tests.tritonserver``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from service.backends.triton.repo import parse_config
from tests.data import REPO

CONFIG = REPO / "model_repository" / "dstformer" / "config.pbtxt"


class RecordingTriton(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]  # untyped
    """Ready, described by the production config, doubling its input; ``metadata``: one dict per inference."""

    def __init__(self) -> None:
        self.config = parse_config(CONFIG.read_text())
        self.metadata: list[dict[str, str]] = []

    async def ModelReady(self, request: Any, context: Any) -> Any:
        return service_pb2.ModelReadyResponse(ready=request.name == self.config.name)

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        return service_pb2.ModelConfigResponse(config=self.config)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        return service_pb2.ModelStatisticsResponse()

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        given = request.inputs[0]
        x = np.frombuffer(request.raw_input_contents[0], np.float32).reshape(tuple(given.shape))
        output = service_pb2.ModelInferResponse.InferOutputTensor(
            name=request.outputs[0].name, datatype="FP32", shape=list(given.shape)
        )
        return service_pb2.ModelInferResponse(
            model_name=request.model_name, outputs=[output], raw_output_contents=[(2 * x).astype(np.float32).tobytes()]
        )


@asynccontextmanager
async def recording_triton() -> AsyncIterator[tuple[RecordingTriton, str]]:
    """Serve a ``RecordingTriton`` until the block ends; yields it and its ``host:port``."""
    servicer = RecordingTriton()
    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
