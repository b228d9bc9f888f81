"""The device / precision / staging / CUDA-graph logic of the in-process runner, exercised on the CPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from service.backends.torchscript import runner as runner_mod
from service.backends.torchscript.runner import (
    GraphCache,
    PinnedBuffer,
    Runner,
    native_precision,
    select_device,
)
from service.model.checkpoint import build_model
from service.model.configs import resolve_config
from service.model.export import script
from service.model.precision import torch_dtype


@pytest.fixture(scope="module")
def tiny() -> Any:
    _, hparams = resolve_config("tiny")
    return build_model(hparams, seed=0).eval()


def _batch(b: int = 2, t: int = 9, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((b, t, 17, 3)).astype(np.float32)


# --- device selection ---------------------------------------------------------------------------------------


def test_select_device_on_a_machine_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == "cpu"
    assert select_device(" CPU ") == "cpu"
    with pytest.raises(ValueError, match=r"device 'cuda' asked for, but there is .*; use --device cpu or auto"):
        select_device("cuda")
    with pytest.raises(ValueError, match="device 'cuda:1' asked for"):
        select_device("cuda:1")


def test_select_device_with_one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert select_device("auto") == "cuda:0"
    assert select_device("cuda") == "cuda:0"
    assert select_device("cuda:0") == "cuda:0"
    with pytest.raises(ValueError, match=r"device 'cuda:1' asked for, but only 1 GPU\(s\) are visible"):
        select_device("cuda:1")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:-1", "", "mps"])
def test_select_device_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match=rf"device must be auto, cpu, cuda or cuda:N, got {name!r}"):
        select_device(name)


# --- precision ----------------------------------------------------------------------------------------------


def test_torch_dtype() -> None:
    assert [torch_dtype(p) for p in ("fp32", "bf16", "fp16")] == [torch.float32, torch.bfloat16, torch.float16]
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, got 'int8'"):
        torch_dtype("int8")


def test_native_precision_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert native_precision("fp32", "cpu") is None
    monkeypatch.setattr(runner_mod, "_cpu_has", lambda precision: False)
    reason = native_precision("bf16", "cpu")
    assert reason == (
        "this CPU has no AVX512-BF16 or AMX-BF16: bf16 runs without hardware support, several times slower than fp32"
    )
    assert "AVX512-FP16 or AMX-FP16" in str(native_precision("fp16", "cpu"))
    monkeypatch.setattr(runner_mod, "_cpu_has", lambda precision: precision == "bf16")
    assert native_precision("bf16", "cpu") is None


def test_native_precision_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert native_precision("fp16", "cuda:0") is None
    assert native_precision("bf16", "cuda:0") == "this GPU has no bf16 arithmetic (needs compute capability >= 8.0)"


# --- the runner on CPU --------------------------------------------------------------------------------------


def test_fp32_runner_equals_the_model_and_returns_float32(tiny: Any) -> None:
    x = _batch()
    run = Runner(script(tiny), device="cpu", precision="fp32", cuda_graphs=True)
    with torch.inference_mode():
        expected = tiny(torch.from_numpy(x)).numpy()
    out = run(x)
    assert out.dtype == np.float32 and out.shape == (2, 9, 17, 3)
    np.testing.assert_array_equal(out, expected)
    assert run.graph_shapes == []  # CUDA graphs are a no-op off CUDA


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_runner_casts_weights_and_keeps_float32_io(tiny: Any, precision: str) -> None:
    x = _batch(b=1, t=3)
    with torch.inference_mode():
        expected = tiny(torch.from_numpy(x)).numpy()
    _, hparams = resolve_config("tiny")
    model = build_model(hparams, seed=0).eval()
    run = Runner(model, device="cpu", precision=precision)
    assert {p.dtype for p in model.parameters()} == {torch_dtype(precision)}
    out = run(x)
    assert out.dtype == np.float32 and out.shape == expected.shape
    # bf16 keeps 8 significant bits, fp16 11: errors of a few units in the last place of the output scale.
    tolerance = {"bf16": 2e-2, "fp16": 3e-3}[precision] * float(np.abs(expected).max())
    assert 0 < float(np.abs(out - expected).max()) < tolerance


@pytest.mark.parametrize("staged", [False, True])
def test_a_model_without_its_own_cast_still_serves_in_bf16(staged: bool) -> None:
    # Files exported before the DSTformer cast its input take the weights' dtype only: the runner casts too.
    linear = torch.nn.Linear(3, 3)
    x = _batch(b=1, t=4)
    with torch.inference_mode():
        expected = linear(torch.from_numpy(x)).numpy()
    out = Runner(linear, device="cpu", precision="bf16", staged=staged)(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=0.05 * float(np.abs(expected).max()))


def test_staged_path_reuses_its_buffers_and_never_aliases_results(tiny: Any) -> None:
    run = Runner(script(tiny), device="cpu", precision="fp32", staged=True)
    direct = Runner(script(tiny), device="cpu", precision="fp32")
    a, b, small = _batch(seed=1), _batch(seed=2), _batch(b=1, t=5, seed=3)
    out_a = run(a)
    assert run.host_allocations == 2  # one input and one output buffer
    out_b = run(b)
    out_small = run(small)
    assert run.host_allocations == 2  # same or smaller batches reuse them
    np.testing.assert_array_equal(out_a, direct(a))  # not overwritten by the later calls
    np.testing.assert_array_equal(out_b, direct(b))
    np.testing.assert_array_equal(out_small, direct(small))
    run(_batch(b=4, t=9))
    assert run.host_allocations == 4  # a larger batch grows both


@pytest.mark.parametrize("staged", [False, True])
def test_the_rows_from_first_come_from_the_models_own_method(tiny: Any, staged: bool) -> None:
    x = _batch(b=3, t=9)
    run = Runner(script(tiny), device="cpu", precision="fp32", staged=staged)
    with torch.inference_mode():
        expected = tiny.forward_from(torch.from_numpy(x), 6).numpy()
    out = run(x, 6)
    assert out.shape == (3, 3, 17, 3)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(out, run(x)[:, 6:], rtol=0, atol=1e-5)


class _Doubler(torch.nn.Module):
    """A model file exported before ``forward_from`` existed: only ``forward``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_a_model_without_forward_from_is_sliced() -> None:
    x = _batch(b=2, t=5)
    out = Runner(torch.jit.script(_Doubler()), device="cpu", precision="fp32")(x, 3)
    np.testing.assert_array_equal(out, x[:, 3:] * 2)


def test_runner_rejects_a_bad_device_or_precision(tiny: Any) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        Runner(tiny, device="cpu", precision="int8")
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N"):
        Runner(tiny, device="tpu", precision="fp32")


# --- policies behind the GPU-only parts ---------------------------------------------------------------------


class _Shape:
    def __init__(self, *shape: int) -> None:
        self.shape = shape


def test_graph_cache_captures_after_warmup_and_evicts_least_recently_used() -> None:
    captured: list[tuple[int, ...]] = []

    def capture(shape: tuple[int, ...]) -> Any:
        captured.append(shape)
        return lambda x: ("graph", x.shape)

    cache = GraphCache(capture, lambda x: ("eager", x.shape), after=2, capacity=2)
    a, b, c = _Shape(1, 27, 17, 3), _Shape(4, 27, 17, 3), _Shape(8, 27, 17, 3)
    assert cache(a) == ("eager", a.shape)  # first sight: eager
    assert cache(a) == ("graph", a.shape)  # second: captured and replayed
    assert cache(a) == ("graph", a.shape)
    assert captured == [a.shape]  # captured once
    cache(b), cache(b)
    assert cache.shapes == [a.shape, b.shape]
    cache(a)  # a becomes the most recently used
    cache(c), cache(c)  # a third shape evicts the least recently used, b
    assert cache.shapes == [a.shape, c.shape]
    assert cache(b) == ("eager", b.shape)  # b must earn its graph again
    assert captured == [a.shape, b.shape, c.shape]


def test_graph_cache_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="after and capacity must be >= 1, got 0 and 8"):
        GraphCache(lambda s: lambda x: x, lambda x: x, after=0)


def test_pinned_buffer_grows_geometrically() -> None:
    sizes: list[int] = []

    def allocate(n: int) -> torch.Tensor:
        sizes.append(n)
        return torch.empty(n)

    buffer = PinnedBuffer(allocate)
    assert buffer.view((2, 3)).shape == (2, 3)
    assert buffer.view((1, 5)).shape == (1, 5)
    assert buffer.view((7,)).shape == (7,)
    assert sizes == [6, 12]  # reused for 5, doubled for 7
