"""Triton python-backend model that runs the exported model file: the CPU twin of the production model.

``write_cpu_repository`` (``service/backends/triton/repo.py``) copies this file as
``<repo>/<model>/<version>/model.py`` next to a ``model.pt`` (run with torch) or a ``model.onnx`` (run with ONNX
Runtime's CPU provider); it is not imported by the service. It runs inside Triton's python-backend stub, whose
interpreter finds torch and onnxruntime through ``python3`` on PATH (shared/design/TRITON.md). The contract is that
of the production model (``pytorch_libtorch`` or ``onnxruntime_onnx``): input ``[B, T, 17, 3]`` float32 named as in
the config, output of the same shape; every request of one ``execute`` call is answered (the python backend's API:
one response per request, in order, errors as responses).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Loads the model file once per instance; runs requests of equal shape as one batch."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]
        folder = os.path.join(args["model_repository"], args["model_version"])
        # One intra-op thread per instance unless told otherwise: instances scale out, threads would contend.
        threads = int(os.environ.get("MOTIONLIFT_TRITON_THREADS", "1"))
        self.session: Any = None
        self.model: Any = None
        if os.path.isfile(os.path.join(folder, "model.onnx")):
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            path = os.path.join(folder, "model.onnx")
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            return
        torch.set_num_threads(threads)
        self.model = torch.jit.load(os.path.join(folder, "model.pt"), map_location="cpu").eval()  # type: ignore[no-untyped-call]

    def _run(self, batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.session is not None:
            out: np.ndarray[Any, Any] = self.session.run([self.output], {self.input: batch})[0]
            return out
        with torch.inference_mode():
            result: np.ndarray[Any, Any] = self.model(torch.from_numpy(batch)).numpy()
        return result

    def execute(self, requests: list[Any]) -> list[Any]:
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        responses: list[Any] = [None] * len(requests)
        # Triton's dynamic batcher only merges requests of equal shape; group anyway so a mixed call still works.
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(tuple(a.shape[1:]), []).append(i)
        for indices in groups.values():
            try:
                batch = np.concatenate([arrays[i] for i in indices]).astype(np.float32, copy=False)
                out = self._run(batch)
            except Exception as exc:  # one failing shape must not fail the other requests
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"model failed: {exc}"))
                continue
            start = 0
            for i in indices:
                n = len(arrays[i])
                tensor = pb_utils.Tensor(self.output, np.ascontiguousarray(out[start : start + n]))
                responses[i] = pb_utils.InferenceResponse(output_tensors=[tensor])
                start += n
        return responses

    def finalize(self) -> None:
        self.model = self.session = None
