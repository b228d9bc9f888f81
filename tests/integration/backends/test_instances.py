"""The model in its own processes (service/backends/torchscript/instance.py): the same answers as the model run
here, one process per instance, a killed one restarted while the service says so, and load errors named."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.backends.torchscript import cpus
from service.backends.torchscript.backend import TorchScriptBackend
from service.backends.torchscript.instance import Spec, largest_batch
from service.config import Settings
from service.core.backend import Array, ModelInfo
from service.core.lifter import Lifter
from service.errors import Unavailable
from tests.data import walk
from tests.servers import serve_service, until


def test_instances_are_processes_that_answer_as_the_model_does_here(tiny_model: Path) -> None:
    import torch

    from service.model.export import load_torchscript

    batch = np.random.default_rng(0).normal(size=(3, 27, 17, 3)).astype(np.float32)
    model, _ = load_torchscript(tiny_model)
    torch.set_num_threads(1)
    with torch.inference_mode():
        expected = model(torch.from_numpy(batch)).numpy()
        last = model.forward_from(torch.from_numpy(batch), 26).numpy()

    async def run() -> tuple[list[int], Array, Array, int]:
        backend = TorchScriptBackend(tiny_model, device="cpu", threads=1, instances=2)
        await backend.start()
        try:
            out = await backend.infer(batch)
            tail = await backend.infer(batch, first=26)  # the model process runs forward_from
            return backend.pids, out, tail, backend.concurrency
        finally:
            await backend.close()

    pids, out, tail, concurrency = asyncio.run(run())
    assert len(pids) == 2 and os.getpid() not in pids and concurrency == 2
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(tail, last)


def test_a_missing_model_file_is_named_when_the_backend_starts(tmp_path: Path) -> None:
    backend = TorchScriptBackend(tmp_path / "absent.pt", device="cpu", threads=1)
    with pytest.raises(Unavailable, match=r"model file .*absent\.pt does not exist; run `bash \.ci/setup`"):
        asyncio.run(backend.start())


def test_a_killed_model_process_is_restarted_and_the_service_says_so_meanwhile(tiny_model: Path) -> None:
    settings = Settings(model=tiny_model, device="cpu", threads=1)
    backend = TorchScriptBackend(tiny_model, device="cpu", threads=1)
    body = {"keypoints": walk(27), "format": "coco", "image_size": [1920, 1080]}
    with serve_service(settings, Lifter(backend, settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/lift", json=body).status_code == 200
        [pid] = backend.pids
        os.kill(pid, signal.SIGKILL)
        lost = client.post("/lift", json=body)
        assert lost.status_code == 503, lost.text
        assert lost.json()["error"]["message"] == "the model process exited (exit code -9); it is being restarted"
        until(lambda: client.get("/readyz").status_code == 200, "the model process to come back", seconds=120)
        assert len(backend.pids) == 1 and backend.pids != [pid]
        again = client.post("/lift", json=body)
        assert again.status_code == 200, again.text


def test_the_gateway_process_does_not_load_torch_and_keeps_off_the_model_cpus(tiny_model: Path) -> None:
    """`motionlift serve` on the CPU: torch lives in the model process only (the gateway was 262 MiB with it,
    84 MiB without); every thread of the gateway keeps to the CPUs the model process leaves (cpus.py, placement)."""
    import subprocess
    import sys

    from service.bench.process import free_port, wait_ready

    port, rpc = free_port(), free_port()
    command = [sys.executable, "-m", "service", "serve", "--model", str(tiny_model), "--port", str(port),
               "--grpc-port", str(rpc), "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command)
    try:
        wait_ready(server, f"http://127.0.0.1:{port}/readyz", 120)
        maps = Path(f"/proc/{server.pid}/maps").read_text()
        assert "libtorch" not in maps
        placement = cpus.current(instances=1, threads=0)
        everything = set(os.sched_getaffinity(0))
        gateway = set(placement.gateway) if placement else everything
        model = set(placement.instances[0]) if placement else everything
        threads = os.listdir(f"/proc/{server.pid}/task")
        assert len(threads) > 3  # the loop, grpcio's, the model's pipe thread: all of them
        assert {t: os.sched_getaffinity(int(t)) for t in threads} == {t: gateway for t in threads}
        [child] = [p for p in _children(server.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        model_threads = os.listdir(f"/proc/{child}/task")
        assert {t: os.sched_getaffinity(int(t)) for t in model_threads} == {t: model for t in model_threads}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def _children(pid: int) -> list[int]:
    return [
        int(c)
        for t in os.listdir(f"/proc/{pid}/task")
        for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()
    ]


def test_model_processes_keep_to_their_cpus_and_a_restarted_one_gets_the_same(tiny_model: Path) -> None:
    mask = sorted(os.sched_getaffinity(0))
    if len(mask) < 2:
        pytest.skip("placement needs two CPUs")
    placement = cpus.Placement(gateway=(mask[0],), instances=((mask[-1],),))

    async def run() -> tuple[set[int], set[int]]:
        backend = TorchScriptBackend(tiny_model, device="cpu", threads=1, placement=placement)
        await backend.start()
        try:
            [pid] = backend.pids
            first = os.sched_getaffinity(pid)
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(Unavailable):
                await backend.infer(np.zeros((1, 27, 17, 3), np.float32))
            for _ in range(1200):
                if backend.pids and backend.pids != [pid]:
                    break
                await asyncio.sleep(0.1)
            [again] = backend.pids
            return first, os.sched_getaffinity(again)
        finally:
            await backend.close()

    first, again = asyncio.run(run())
    assert first == again == {mask[-1]}


def test_a_placement_for_other_instances_is_refused(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="placement has CPUs for 1 instances, not 2"):
        TorchScriptBackend(tiny_model, instances=2, placement=cpus.Placement((0,), ((1,),)))


def test_a_cancelled_batch_does_not_hand_its_answer_to_the_next(tiny_model: Path) -> None:
    """The caller of a long batch goes away; the batch still runs in the model process. The next batch waits for
    that instance and gets its own answer, not the abandoned one's."""
    big = np.zeros((64, 243, 17, 3), np.float32)
    small = np.random.default_rng(1).normal(size=(1, 27, 17, 3)).astype(np.float32)

    async def run() -> tuple[Array, list[Array]]:
        backend = TorchScriptBackend(tiny_model, device="cpu", threads=1, instances=2)
        await backend.start()
        try:
            alone = await backend.infer(small)
            abandoned = asyncio.create_task(backend.infer(big))
            await asyncio.sleep(0.2)  # the big batch is in one model process now
            abandoned.cancel()
            with pytest.raises(asyncio.CancelledError):
                await abandoned
            # Both instances are asked at once: the busy one must not be handed out before its answer is read.
            return alone, list(await asyncio.gather(*(backend.infer(small) for _ in range(4))))
        finally:
            await backend.close()

    alone, after = asyncio.run(run())
    for out in after:
        assert out.shape == (1, 27, 17, 3)
        np.testing.assert_array_equal(out, alone)


def test_batches_queued_at_one_instance_get_their_own_answers_in_order(tiny_model: Path) -> None:
    """An instance takes a batch ahead of the one it runs (``AHEAD``): answers come back in the order the batches
    were sent, each to its own caller."""
    rng = np.random.default_rng(2)
    batches = [rng.normal(size=(n, 27, 17, 3)).astype(np.float32) for n in (8, 1, 3, 1, 5, 2)]

    async def run() -> tuple[list[Array], list[Array], int]:
        backend = TorchScriptBackend(tiny_model, device="cpu", threads=1, instances=1)
        await backend.start()
        try:
            alone = [await backend.infer(b) for b in batches]
            together = list(await asyncio.gather(*(backend.infer(b) for b in batches)))
            return alone, together, backend.ahead
        finally:
            await backend.close()

    alone, together, ahead = asyncio.run(run())
    assert ahead == 1
    for one, other in zip(alone, together, strict=True):
        np.testing.assert_array_equal(other, one)


def test_a_killed_process_fails_each_of_its_batches_and_is_restarted_once(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = np.zeros((64, 243, 17, 3), np.float32)

    async def run() -> tuple[list[BaseException | Array], int, list[int]]:
        backend = TorchScriptBackend(tiny_model, device="cpu", threads=1, instances=1)
        await backend.start()
        try:
            [pid] = backend.pids
            both = [asyncio.create_task(backend.infer(big)) for _ in range(2)]  # one runs, one waits in the pipe
            await asyncio.sleep(0.2)
            os.kill(pid, signal.SIGKILL)
            outcomes = await asyncio.gather(*both, return_exceptions=True)
            await asyncio.to_thread(until, lambda: backend.ready, "the model process to come back", seconds=120)
            return outcomes, pid, backend.pids
        finally:
            await backend.close()

    outcomes, pid, pids = asyncio.run(run())
    assert [str(o) for o in outcomes] == ["the model process exited (exit code -9); it is being restarted"] * 2
    assert len(pids) == 1 and pids != [pid]
    assert [r.getMessage() for r in caplog.records if "restarting" in r.getMessage()] == [
        f"model process {pid} died; restarting it (0 of 1 alive)"
    ]


@pytest.mark.parametrize(
    ("windows", "frames", "dim_feat", "largest"),
    [
        (32, None, 64, 23),  # the frame budget of a 64-wide model: 640 frames, 23 windows of 27
        (32, None, 512, 2),  # 80 frames: 2 windows
        (32, None, 2048, 1),  # 20 frames: a window over the budget runs alone
        (5, None, 64, 5),  # --max-batch-size first
        (32, 60, 64, 2),  # --max-batch-frames instead of the budget
    ],
)
def test_the_largest_batch_follows_the_batchers_limits(
    windows: int, frames: int | None, dim_feat: int, largest: int
) -> None:
    info = ModelInfo(name="m", config="c", params=0, window=27, trained=False, weights="none", precision="fp32",
                     device="cpu", hyperparams={"dim_feat": dim_feat})  # fmt: skip
    assert largest_batch(Spec("m.pt", batch_windows=windows, batch_frames=frames), info) == largest


def test_an_instance_warms_up_with_the_largest_batch(tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> Array:
        backend = TorchScriptBackend(tiny_model, device="cpu", threads=1, batch_windows=32, batch_frames=500)
        await backend.start()
        try:
            return await backend.infer(np.zeros((2, 243, 17, 3), np.float32))  # the tiny model: 243 frames
        finally:
            await backend.close()

    with caplog.at_level(logging.INFO, logger="service.backends.torchscript.backend"):
        out = asyncio.run(run())
    assert out.shape == (2, 243, 17, 3)
    [line] = [r.getMessage() for r in caplog.records if "warmed up" in r.getMessage()]
    assert "the largest batch (2 window(s)) included" in line, line
