"""Triton backend: the same ``Backend`` Protocol over one or more Triton Inference Servers (tritonclient gRPC aio).

* **Model description without torch**: ``start`` reads the model's config from Triton (``get_model_config``);
  ``motionlift export`` put the model's metadata in it (``service/model/repository.py``), so ``info`` is the same as
  the in-process backend's and the gateway needs neither torch nor the model file.
* **Readiness follows Triton**: a monitor task asks every server ``is_model_ready`` every ``poll_s`` (with a
  short deadline, so a vanished host counts as down too); ``ready`` is True while at least one has the model
  ready. A call that fails with an endpoint error (UNAVAILABLE, NOT_FOUND) marks its server down at once and
  wakes the monitor, and the batch is retried on another ready server (inference is a pure function).
* **Reconnects by itself**: gRPC channels reconnect on their own; their reconnect backoff is capped at
  ``MAX_BACKOFF_MS`` (gRPC's default cap is 120 s, gRPC doc "connection-backoff"), so a restarted Triton is
  used again within about a second of being ready, with no restart of the gateway.
* **Several URLs used together**: each batch goes to the ready server with the fewest calls in flight.
* **A model that failed to load is said so**: when a server answers that the model is not ready, its repository
  index says why (``status.load_failure``: Triton's reason, e.g. a TorchScript file from a newer PyTorch than the
  image's libtorch); that is logged as an error once per server and reason, and ``start`` gives up with it.
* **Errors** map by gRPC status code onto our table (``triton_status.py``).
* **Latency**: the core's ``inference`` stage of a request is the Triton round trip of its batches (the
  batcher times ``infer``); Triton's own queue/compute split comes from its statistics (``server_stats``),
  polled every ``stats_s`` into ``last_stats`` (exported as Prometheus metrics by ``triton_metrics.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.backends.triton.status import ENDPOINT_ERRORS, ServerStats, load_failure, status_code, to_lift_error
from service.core.backend import Array, ModelInfo
from service.errors import BackendError, Unavailable

log = logging.getLogger(__name__)

MAX_BACKOFF_MS = 1000


@dataclass
class _Endpoint:
    url: str
    client: Any
    ready: bool = False
    inflight: int = 0
    failure: str | None = None  # why the server cannot serve the model (its repository index), when it says


class TritonBackend:
    """Runs batches on the Triton model ``model`` (``version`` "" = the server's version policy) at ``urls``.

    ``start`` waits up to ``start_wait_s`` for a server with the model ready and raises ``Unavailable`` if there
    is none, or ``BackendError`` if the model's config is not a MotionLift export. ``infer`` raises
    ``Unavailable`` when no server has the model ready, ``Overloaded``/``DeadlineExceeded``/``BackendError``
    as Triton's status code says; each call may take ``timeout_s``.
    """

    def __init__(
        self,
        urls: list[str],
        model: str = "dstformer",
        version: str = "",
        *,
        timeout_s: float = 30.0,
        poll_s: float = 0.25,
        check_timeout_s: float = 0.5,
        start_wait_s: float = 60.0,
        stats_s: float = 2.0,
    ) -> None:
        if not urls:
            raise ValueError("at least one Triton URL is needed")
        self.urls = list(urls)
        self.model = model
        self.version = version
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.check_timeout_s = check_timeout_s
        self.start_wait_s = start_wait_s
        self.stats_s = stats_s
        self.last_stats = ServerStats()
        self._endpoints: list[_Endpoint] = []
        self._info: ModelInfo | None = None
        self._input = self._output = ""
        self._max_batch = 1
        self._instances = 1  # model instances per server (config.pbtxt instance_group counts)
        self._monitor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._turn = 0

    @property
    def ready(self) -> bool:
        return self._monitor is not None and any(e.ready for e in self._endpoints)

    @property
    def concurrency(self) -> int:
        """One batch per model instance on every server, plus one in flight on the wire, so that no instance
        waits for the gateway's round trip (the batcher then keeps this many batches going)."""
        return self._instances * len(self._endpoints) + 1

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise Unavailable("the model is not loaded yet")
        return self._info

    async def start(self) -> None:
        import tritonclient.grpc.aio as triton_aio

        options = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", MAX_BACKOFF_MS),
        ]
        self._endpoints = [_Endpoint(u, triton_aio.InferenceServerClient(u, channel_args=options)) for u in self.urls]
        deadline = time.monotonic() + self.start_wait_s
        try:
            while not any(e.ready for e in self._endpoints):
                await asyncio.gather(*(self._check(e) for e in self._endpoints))
                if any(e.ready for e in self._endpoints):
                    break
                if time.monotonic() > deadline:
                    why = "".join(f"; {e.url}: {e.failure}" for e in self._endpoints if e.failure)
                    raise Unavailable(
                        f"no Triton server at {', '.join(self.urls)} has model {self.model!r} ready "
                        f"after {self.start_wait_s:g} s{why}"
                    )
                await asyncio.sleep(self.poll_s)
            await self._describe(next(e for e in self._endpoints if e.ready))
        except BaseException:
            await self._close_clients()
            raise
        self._monitor = asyncio.create_task(self._watch(), name="triton-monitor")
        log.info(
            "Triton model %r ready on %d of %d servers",
            self.model,
            sum(e.ready for e in self._endpoints),
            len(self._endpoints),
        )

    async def _describe(self, endpoint: _Endpoint) -> None:
        from service.backends.triton.repo import config_meta, tensor_spec

        try:
            response = await endpoint.client.get_model_config(self.model, self.version, client_timeout=self.timeout_s)
            config = response.config
            spec = tensor_spec(config)
            meta = config_meta(config)
            kinds = {g.kind for g in config.instance_group}
        except ValueError as exc:
            raise BackendError(
                f"Triton model {self.model!r} at {endpoint.url} is not a MotionLift export: {exc}"
            ) from exc
        except Exception as exc:  # tritonclient.utils.InferenceServerException
            raise to_lift_error(exc, endpoint.url) from exc
        self._input, self._output = spec.input, spec.output
        self._max_batch = max(1, spec.max_batch_size)
        self._instances = max(1, sum(g.count or 1 for g in config.instance_group))
        device = "triton/gpu" if 1 in kinds else "triton/cpu"  # ModelInstanceGroup.Kind: KIND_GPU = 1
        self._info = ModelInfo.from_meta(meta, device=device)
        # `motionlift export` records its torch (model.export.model_meta): the one to pair with Triton's libtorch.
        log.info("Triton model %r at %s was exported with torch %s", self.model, endpoint.url, meta.get("torch", "?"))

    async def _check(self, endpoint: _Endpoint) -> None:
        answered = True
        try:
            ready = bool(
                await endpoint.client.is_model_ready(self.model, self.version, client_timeout=self.check_timeout_s)
            )
        except Exception:  # refused, reset, timed out: all mean "cannot serve now"
            ready = answered = False
        if ready != endpoint.ready:
            log.warning("Triton at %s: model %r %s", endpoint.url, self.model, "ready" if ready else "NOT ready")
        endpoint.ready = ready
        if ready or not answered:  # a server that comes back is asked again, and its failure logged again
            endpoint.failure = None
        else:
            await self._explain(endpoint)

    async def _explain(self, endpoint: _Endpoint) -> None:
        """A server answered that the model is not ready: read why from its repository index, and log it as an
        error when the reason is new (a model that failed to load stays failed until the repository changes)."""
        try:
            index = await endpoint.client.get_model_repository_index(client_timeout=self.check_timeout_s)
        except Exception:  # best effort: readiness is what decides, the reason only explains
            return
        failure = load_failure(index, self.model, self.version)
        if failure is not None and failure != endpoint.failure:
            log.error("Triton at %s cannot serve model %r: %s", endpoint.url, self.model, failure)
        endpoint.failure = failure

    async def _watch(self) -> None:
        next_stats = 0.0
        while True:
            was_ready = {e.url for e in self._endpoints if e.ready}
            await asyncio.gather(*(self._check(e) for e in self._endpoints))
            back = [e for e in self._endpoints if e.ready and e.url not in was_ready]
            if back:
                # A server that comes back may have loaded a new model version: describe the model again.
                try:
                    await self._describe(back[0])
                except Exception as exc:  # keep serving with the description we have
                    log.warning("could not re-read the model config at %s: %s", back[0].url, exc)
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.stats_s
                with contextlib.suppress(Exception):  # statistics are best effort
                    self.last_stats = await self.server_stats()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def server_stats(self) -> ServerStats:
        """Triton's cumulative statistics for the model, summed over the servers that answer."""
        total = ServerStats()
        for e in self._endpoints:
            with contextlib.suppress(Exception):
                response = await e.client.get_inference_statistics(
                    self.model, self.version, client_timeout=self.check_timeout_s
                )
                total += ServerStats.from_response(response)
        return total

    def _pick(self, tried: set[str]) -> _Endpoint | None:
        candidates = [e for e in self._endpoints if e.ready and e.url not in tried]
        if not candidates:
            return None
        self._turn += 1  # rotate the tie-break so idle servers share the load
        n = len(candidates)
        return min(candidates[self._turn % n :] + candidates[: self._turn % n], key=lambda e: e.inflight)

    async def infer(self, batch: Array, *, headers: Mapping[str, str] | None = None) -> Array:
        """``Backend.infer``; ``headers`` (the W3C trace context) go to Triton as gRPC metadata of every call,
        so Triton's own spans (its ``--trace-config mode=opentelemetry``) join the caller's trace."""
        if self._monitor is None:
            raise Unavailable("the Triton backend is not started")
        if len(batch) <= self._max_batch:
            return await self._infer_once(batch, headers)
        # Triton rejects batches over the config's max_batch_size: send such a batch in parts, concurrently.
        parts = [batch[i : i + self._max_batch] for i in range(0, len(batch), self._max_batch)]
        return np.concatenate(await asyncio.gather(*(self._infer_once(p, headers) for p in parts)))

    async def _infer_once(self, batch: Array, headers: Mapping[str, str] | None) -> Array:
        import tritonclient.grpc.aio as triton_aio

        tried: set[str] = set()
        while True:
            endpoint = self._pick(tried)
            if endpoint is None:
                raise Unavailable(f"no Triton server has model {self.model!r} ready", retry_after_s=1.0)
            x = np.ascontiguousarray(batch, dtype=np.float32)
            inp = triton_aio.InferInput(self._input, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            out = triton_aio.InferRequestedOutput(self._output)
            endpoint.inflight += 1
            try:
                result = await endpoint.client.infer(
                    self.model,
                    [inp],
                    model_version=self.version,
                    outputs=[out],
                    client_timeout=self.timeout_s,
                    headers=dict(headers) if headers else None,
                )
            except Exception as exc:  # InferenceServerException; the status code decides
                if status_code(exc) not in ENDPOINT_ERRORS:
                    raise to_lift_error(exc, endpoint.url) from exc
                endpoint.ready = False  # until the monitor sees it ready again
                self._wake.set()
                tried.add(endpoint.url)
                log.warning(
                    "Triton at %s failed a batch with %s; trying another server", endpoint.url, status_code(exc)
                )
                continue
            finally:
                endpoint.inflight -= 1
            y: Array | None = result.as_numpy(self._output)
            if y is None or y.shape != x.shape:
                raise BackendError(f"Triton answered shape {None if y is None else y.shape} for input {x.shape}")
            return y.astype(np.float32, copy=False)

    async def _close_clients(self) -> None:
        for e in self._endpoints:
            e.ready = False
            with contextlib.suppress(Exception):
                await e.client.close()

    async def close(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        await self._close_clients()
