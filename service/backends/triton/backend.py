"""Triton backend: the same ``Backend`` Protocol over one or more Triton Inference Servers (tritonclient gRPC aio).

* **Model description without torch**: ``start`` reads the model's config from Triton (``get_model_config``);
  ``motionlift export`` put the model's metadata in it (``service/model/repository.py``), so ``info`` is the same as
  the in-process backend's and the gateway needs neither torch nor the model file.
* **Readiness follows Triton**: a monitor task asks every server ``is_model_ready`` every ``poll_s`` (with a
  short deadline, so a vanished host counts as down too); ``ready`` is True while at least one has the model
  ready. A call that fails with an endpoint error (UNAVAILABLE, NOT_FOUND) marks its server down at once and
  wakes the monitor, and the batch is retried on another ready server (inference is a pure function).
* **Reconnects by itself**: gRPC channels reconnect on their own; their reconnect backoff is capped at
  ``pool.MAX_BACKOFF_MS`` (gRPC's default cap is 120 s, gRPC doc "connection-backoff"), so a restarted Triton is
  used again within about a second of being ready, with no restart of the gateway.
* **Several URLs used together**: each batch goes to the ready server with the fewest calls in flight
  (``pool.py``); a batch is tried on at most ``attempts`` servers.
* **Discovery**: a URL ``dns:///NAME:PORT`` is resolved again every ``resolve_s`` (``discovery.py``): its new
  addresses join the rotation once their model is ready, those that disappear leave it; their batches in flight
  finish or fail and are retried on another server, so a replica that goes away fails no request.
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

import numpy as np

from service.backends.triton.discovery import Discovery, Resolver, system_resolver
from service.backends.triton.pool import Endpoint, Pool, connect
from service.backends.triton.status import ENDPOINT_ERRORS, ServerStats, load_failure, status_code, to_lift_error
from service.core.backend import Array, ModelInfo
from service.errors import BackendError, Unavailable

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT_S = 5.0  # a DNS answer slower than this counts as a failure (the last good answer is kept)


class TritonBackend:
    """Runs batches on the Triton model ``model`` (``version`` "" = the server's version policy) at ``urls``.

    ``urls``: ``host:port`` or ``dns:///NAME:PORT`` (resolved with ``resolver`` every ``resolve_s``). The
    constructor raises ``ValueError`` for a malformed URL and does no I/O. ``start`` waits up to ``start_wait_s``
    for a server with the model ready and raises ``Unavailable`` if there is none, or ``BackendError`` if the
    model's config is not a MotionLift export. ``infer`` raises ``Unavailable`` when no server has the model ready
    (or ``attempts`` servers failed the batch with an endpoint error), ``Overloaded``/``DeadlineExceeded``/
    ``BackendError`` as Triton's status code says; each call may take ``timeout_s``.
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
        resolve_s: float = 5.0,
        resolver: Resolver = system_resolver,
        attempts: int = 3,
    ) -> None:
        if not urls:
            raise ValueError("at least one Triton URL is needed")
        self.urls = list(urls)
        self._discovery = Discovery(self.urls, resolver, timeout_s=RESOLVE_TIMEOUT_S)
        self.resolve_s = resolve_s
        self.attempts = max(1, attempts)
        self.model = model
        self.version = version
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.check_timeout_s = check_timeout_s
        self.start_wait_s = start_wait_s
        self.stats_s = stats_s
        self.last_stats = ServerStats()
        self._pool = Pool(connect)
        self._info: ModelInfo | None = None
        self._input = self._output = ""
        self._max_batch = 1
        self._instances = 1  # model instances per server (config.pbtxt instance_group counts)
        self._monitor: asyncio.Task[None] | None = None
        self._resolving: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._monitor is not None and bool(self._pool.ready)

    @property
    def servers(self) -> dict[str, bool]:
        """Every server the URLs name now (``host:port``), and whether it is in rotation (model ready)."""
        return {e.url: e.ready for e in self._pool.endpoints}

    @property
    def concurrency(self) -> int:
        """One batch per model instance on every ready server, plus one in flight on the wire, so that no instance
        waits for the gateway's round trip (the batcher keeps this many batches going). It changes as servers join
        and leave."""
        return self._instances * max(1, len(self._pool.ready)) + 1

    @property
    def ahead(self) -> int:
        return 0  # Triton queues batches itself (its dynamic batcher); concurrency already keeps its instances fed

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise Unavailable("the model is not loaded yet")
        return self._info

    async def start(self) -> None:
        deadline = time.monotonic() + self.start_wait_s
        try:
            await self._discover()
            resolved = time.monotonic()
            while True:
                await asyncio.gather(*(self._check(e) for e in self._pool.endpoints))
                if self._pool.ready:
                    break
                if time.monotonic() > deadline:
                    why = "".join(f"; {e.url}: {e.failure}" for e in self._pool.endpoints if e.failure)
                    raise Unavailable(
                        f"no Triton server at {self._discovery.describe()} has model {self.model!r} ready "
                        f"after {self.start_wait_s:g} s{why}"
                    )
                await asyncio.sleep(self.poll_s)
                if self._discovery.dynamic and time.monotonic() - resolved >= self.resolve_s:
                    await self._discover()
                    resolved = time.monotonic()
            await self._describe(self._pool.ready[0])
        except BaseException:
            await self._pool.close()
            raise
        self._monitor = asyncio.create_task(self._watch(), name="triton-monitor")
        if self._discovery.dynamic:
            self._resolving = asyncio.create_task(self._follow_dns(), name="triton-discovery")
        log.info(
            "Triton model %r ready on %d of %d servers", self.model, len(self._pool.ready), len(self._pool.endpoints)
        )

    async def _discover(self) -> None:
        """Resolve the URLs and bring the rotation up to date; joins and leaves are logged."""
        joined, left = self._pool.update(await self._discovery.servers())
        for url in joined:
            log.info("Triton server %s joins: in rotation once model %r is ready there", url, self.model)
        for url in left:
            log.info("Triton server %s left the rotation (no longer named by %s)", url, self._discovery.describe())
        if joined:
            self._wake.set()  # check the newcomers now rather than at the next poll

    async def _follow_dns(self) -> None:
        while True:
            await asyncio.sleep(self.resolve_s)
            try:
                await self._discover()
            except Exception:  # e.g. an address gRPC cannot take: keep following the rest
                log.exception("Triton discovery failed; trying again in %g s", self.resolve_s)

    async def _describe(self, endpoint: Endpoint) -> None:
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

    async def _check(self, endpoint: Endpoint) -> None:
        answered = True
        try:
            ready = bool(
                await endpoint.client.is_model_ready(self.model, self.version, client_timeout=self.check_timeout_s)
            )
        except Exception:  # refused, reset, timed out: all mean "cannot serve now"
            ready = answered = False
        if ready != endpoint.ready:  # in rotation (info) or out of it (warning)
            log.log(
                logging.INFO if ready else logging.WARNING,
                "Triton at %s: model %r %s",
                endpoint.url,
                self.model,
                "ready" if ready else "NOT ready",
            )
        endpoint.ready = ready
        if ready or not answered:  # a server that comes back is asked again, and its failure logged again
            endpoint.failure = None
        else:
            await self._explain(endpoint)

    async def _explain(self, endpoint: Endpoint) -> None:
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
            was_ready = {e.url for e in self._pool.ready}
            await asyncio.gather(*(self._check(e) for e in self._pool.endpoints))
            await self._pool.close_idle()
            back = [e for e in self._pool.ready if e.url not in was_ready]
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
        for e in self._pool.endpoints:
            with contextlib.suppress(Exception):
                response = await e.client.get_inference_statistics(
                    self.model, self.version, client_timeout=self.check_timeout_s
                )
                total += ServerStats.from_response(response)
        return total

    async def infer(self, batch: Array, *, first: int = 0, headers: Mapping[str, str] | None = None) -> Array:
        """``Backend.infer``; ``headers`` (the W3C trace context) go to Triton as gRPC metadata of every call,
        so Triton's own spans (its ``--trace-config mode=opentelemetry``) join the caller's trace. Triton's model
        has one input, so it computes every row and the rows before ``first`` are dropped here."""
        if self._monitor is None:
            raise Unavailable("the Triton backend is not started")
        if len(batch) <= self._max_batch:
            return (await self._infer_once(batch, headers))[:, first:]
        # Triton rejects batches over the config's max_batch_size: send such a batch in parts, concurrently.
        parts = [batch[i : i + self._max_batch] for i in range(0, len(batch), self._max_batch)]
        return np.concatenate(await asyncio.gather(*(self._infer_once(p, headers) for p in parts)))[:, first:]

    async def _infer_once(self, batch: Array, headers: Mapping[str, str] | None) -> Array:
        import tritonclient.grpc.aio as triton_aio

        tried: set[str] = set()
        while True:
            endpoint = self._pool.pick(tried) if len(tried) < self.attempts else None
            if endpoint is None:
                failed = f" (failed on {', '.join(sorted(tried))})" if tried else ""
                raise Unavailable(f"no Triton server has model {self.model!r} ready{failed}", retry_after_s=1.0)
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

    async def close(self) -> None:
        tasks = [t for t in (self._monitor, self._resolving) if t is not None]
        self._monitor = self._resolving = None
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pool.close()
