"""DSTformer, checkpoints, configs and TorchScript export against the official MotionBERT golden outputs."""

import json
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
import torch.nn.functional as F

from service.model.checkpoint import build_model, count_parameters, load_state_dict
from service.model.configs import CONFIGS, resolve_config
from service.model.dstformer import DSTformer
from service.model.export import export_torchscript, load_torchscript, model_meta, read_meta
from tests.data import FIXTURES, Golden

LENGTHS = [1, 27, 81, 100, 243]
TOL = 1e-4
TINY_PARAMS = 294_023  # /work/shared/reference/meta.json
LEFT, RIGHT = [4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]


def flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror a pose sequence: negate x, swap left and right joints (H36M-17 order)."""
    out = x.clone()
    out[..., 0] *= -1
    out[..., LEFT + RIGHT, :] = out[..., RIGHT + LEFT, :]
    return out


def run_flip_tta(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = (model(x) + flip(model(flip(x)))) / 2
    return out


def max_err(a: torch.Tensor, b: npt.NDArray[np.float32 | np.int64]) -> float:
    return float((a - torch.from_numpy(b)).abs().max())


@pytest.fixture(scope="module")
def golden() -> Golden:
    with np.load(FIXTURES / "golden_tiny.npz") as g:
        return {k: g[k] for k in g.files}


@pytest.fixture(scope="module")
def tiny() -> DSTformer:
    return build_model(CONFIGS["tiny"], FIXTURES / "tiny_official.bin")


@pytest.fixture(scope="module")
def exported(tiny: DSTformer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "nested" / "model.pt"
    meta = model_meta("tiny", CONFIGS["tiny"], tiny, window=243, trained=False, weights="tiny_official.bin")
    export_torchscript(tiny, out, meta)
    return out


def test_official_and_mmpose_checkpoints_give_identical_state_dicts() -> None:
    official = load_state_dict(FIXTURES / "tiny_official.bin")
    mmpose = load_state_dict(FIXTURES / "tiny_mmpose.pth")
    assert official.keys() == mmpose.keys()
    assert all(torch.equal(official[k], mmpose[k]) for k in official)
    assert not any(k.startswith("module.") for k in official)
    assert sum(v.numel() for v in official.values()) == TINY_PARAMS


def test_bare_state_dicts_load_with_and_without_prefix(tmp_path: Path) -> None:
    official = load_state_dict(FIXTURES / "tiny_official.bin")
    torch.save(official, tmp_path / "bare.pt")
    torch.save({"module." + k: v for k, v in official.items()}, tmp_path / "prefixed.pt")
    for name in ("bare.pt", "prefixed.pt"):
        sd = load_state_dict(tmp_path / name)
        assert sd.keys() == official.keys() and all(torch.equal(sd[k], official[k]) for k in sd)


def test_unknown_checkpoint_layout_is_rejected(tmp_path: Path) -> None:
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"unrecognised checkpoint layout.*'epoch', 'model'"):
        load_state_dict(tmp_path / "odd.pt")
    torch.save({"state_dict": {"backbone.norm.weight": torch.ones(2), "neck.x": torch.ones(1)}}, tmp_path / "m.pth")
    with pytest.raises(ValueError, match=r"outside backbone\./head\.: \['neck\.x'\]"):
        load_state_dict(tmp_path / "m.pth")
    with pytest.raises(FileNotFoundError):
        load_state_dict(tmp_path / "missing.pt")


def test_tiny_parameter_count(tiny: DSTformer) -> None:
    assert count_parameters(tiny) == TINY_PARAMS
    assert not tiny.training


@pytest.mark.parametrize("t", LENGTHS)
def test_eager_matches_official(tiny: DSTformer, golden: Golden, t: int) -> None:
    x = torch.from_numpy(golden[f"input_t{t}"])
    with torch.inference_mode():
        assert max_err(tiny(x), golden[f"tiny_out_t{t}"]) <= TOL
        assert max_err(run_flip_tta(tiny, x), golden[f"tiny_out_flip_t{t}"]) <= TOL


@pytest.fixture(scope="module")
def scripted(exported: Path) -> torch.jit.ScriptModule:
    # One module for all lengths: the TorchScript executor must not stay specialised to the first shape.
    return load_torchscript(exported)[0]


@pytest.mark.slow
@pytest.mark.parametrize("t", LENGTHS)
def test_torchscript_matches_official(scripted: torch.jit.ScriptModule, golden: Golden, t: int) -> None:
    module = scripted
    x = torch.from_numpy(golden[f"input_t{t}"])
    ref = golden[f"tiny_out_t{t}"]
    with torch.inference_mode():
        assert max_err(module(x), ref) <= TOL
        assert max_err(run_flip_tta(module, x), golden[f"tiny_out_flip_t{t}"]) <= TOL
        for batch in (1, 3, 4):  # windows are independent of the batch they run in
            idx = [i % 2 for i in range(batch)]
            assert max_err(module(x[idx]), ref[idx]) <= TOL


def test_torchscript_handles_alternating_lengths(scripted: torch.jit.ScriptModule, golden: Golden) -> None:
    with torch.inference_mode():
        for t in [243, 1, 100, 27, 81, 1, 243]:
            assert max_err(scripted(torch.from_numpy(golden[f"input_t{t}"])), golden[f"tiny_out_t{t}"]) <= TOL
        with pytest.raises(torch.jit.Error, match=r"outside 1\.\.243"):
            scripted(torch.zeros(1, 244, 17, 3))


@pytest.mark.parametrize("t", [1, 27, 81, 243])
def test_the_last_rows_alone_are_the_last_rows_of_the_whole(
    tiny: DSTformer, scripted: torch.jit.ScriptModule, golden: Golden, t: int
) -> None:
    """forward_from(x, first) = forward(x)[:, first:] (the official outputs' last rows), eager and exported."""
    x = torch.from_numpy(golden[f"input_t{t}"])
    ref = golden[f"tiny_out_t{t}"]
    with torch.inference_mode():
        for first in sorted({0, t // 2, t - 1}):
            for model in (tiny, scripted):
                out = model.forward_from(x, first)
                assert tuple(out.shape) == (len(x), t - first, 17, 3)
                assert max_err(out, ref[:, first:]) <= TOL
                assert float((out - model(x)[:, first:]).abs().max()) <= 1e-5  # the same sums, apart from rounding
            np.testing.assert_array_equal(tiny.forward_from(x, 0).numpy(), tiny(x).numpy())  # first 0 is forward


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("changes", [{"qkv_bias": False}, {"att_fuse": False}, {"depth": 1}])
def test_the_last_rows_alone_in_every_variant(changes: dict[str, object]) -> None:
    torch.manual_seed(3)
    model = DSTformer(**{**CONFIGS["tiny"], "maxlen": 27, **changes}).eval()  # type: ignore[arg-type]
    scripted = torch.jit.script(model)
    x = torch.randn(2, 27, 17, 3)
    with torch.inference_mode():
        full = model(x)
        for first in (1, 13, 26):
            assert float((model.forward_from(x, first) - full[:, first:]).abs().max()) <= 1e-5
            assert float((scripted.forward_from(x, first) - full[:, first:]).abs().max()) <= 1e-5


def test_the_first_row_is_checked(tiny: DSTformer, scripted: torch.jit.ScriptModule) -> None:
    for first in (-1, 5):
        with pytest.raises(ValueError, match=rf"first row {first} is outside 0\.\.4"):
            tiny.forward_from(torch.zeros(1, 5, 17, 3), first)
        with pytest.raises(torch.jit.Error, match=rf"first row {first} is outside 0\.\.4"):
            scripted.forward_from(torch.zeros(1, 5, 17, 3), first)


def test_read_meta_round_trips(exported: Path, tiny: DSTformer) -> None:
    meta = read_meta(exported)
    assert meta == json.loads(json.dumps(meta))
    assert meta["name"] == "dstformer" and meta["config"] == "tiny" and meta["params"] == TINY_PARAMS
    assert meta["hyperparams"] == CONFIGS["tiny"] and meta["window"] == 243 and meta["trained"] is False
    assert meta["precision"] == "fp32" and meta["torch"] == torch.__version__
    assert load_torchscript(exported)[1] == meta
    assert [p.name for p in exported.parent.iterdir()] == ["model.pt"]  # no temporary file left behind


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_read_meta_rejects_foreign_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), plain)
    with pytest.raises(ValueError, match=r"no motionlift\.json"):
        read_meta(plain)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript model"):
        read_meta(tmp_path / "junk.pt")


def test_window_length_and_shape_are_checked(tiny: DSTformer) -> None:
    with pytest.raises(ValueError, match=r"outside 1\.\.243"):
        tiny(torch.zeros(1, 244, 17, 3))
    with pytest.raises(ValueError, match=r"expected input \[B, T, 17, 3\]"):
        tiny(torch.zeros(1, 5, 16, 3))


@pytest.mark.parametrize(("name", "params"), [("full", 42_466_317), ("lite", 16_001_549)])
def test_official_configs_parameter_counts(name: str, params: int) -> None:
    with torch.device("meta"):
        model = DSTformer(**CONFIGS[name])  # type: ignore[arg-type]
    assert count_parameters(model) == params


def _reference_forward(sd: dict[str, torch.Tensor], heads: int, x: torch.Tensor) -> torch.Tensor:
    """Plain re-statement of the official forward pass (frames folded into the batch, explicit attention)."""
    b, t, j, _ = x.shape

    def lin(name: str, v: torch.Tensor) -> torch.Tensor:
        return F.linear(v, sd[name + ".weight"], sd[name + ".bias"])

    def norm(name: str, v: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(v, v.shape[-1:], sd[name + ".weight"], sd[name + ".bias"], eps=1e-6)

    def attn(p: str, v: torch.Tensor, temporal: bool) -> torch.Tensor:
        c = v.shape[-1]
        q, k, w = lin(p + ".qkv", v).reshape(b, t, j, 3, heads, c // heads).unbind(3)
        s = (c // heads) ** -0.5
        if temporal:
            a = (torch.einsum("btjhd,bsjhd->bjhts", q, k) * s).softmax(-1)
            o = torch.einsum("bjhts,bsjhd->btjhd", a, w)
        else:
            a = (torch.einsum("btjhd,btkhd->bthjk", q, k) * s).softmax(-1)
            o = torch.einsum("bthjk,btkhd->btjhd", a, w)
        return lin(p + ".proj", o.reshape(b * t, j, c))

    def stream(p: str, v: torch.Tensor, s: str) -> torch.Tensor:
        v = v + attn(f"{p}.attn_{s}", norm(f"{p}.norm1_{s}", v), s == "t")
        return v + lin(f"{p}.mlp_{s}.fc2", F.gelu(lin(f"{p}.mlp_{s}.fc1", norm(f"{p}.norm2_{s}", v))))

    h = lin("joints_embed", x.reshape(b * t, j, -1)) + sd["pos_embed"]
    h = (h.reshape(b, t, j, -1) + sd["temp_embed"][:, :t]).reshape(b * t, j, -1)
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks_st.")})
    for i in range(depth):
        x_st = stream(f"blocks_st.{i}", stream(f"blocks_st.{i}", h, "s"), "t")
        x_ts = stream(f"blocks_ts.{i}", stream(f"blocks_ts.{i}", h, "t"), "s")
        alpha = lin(f"ts_attn.{i}", torch.cat([x_st, x_ts], -1)).softmax(-1)
        h = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
    h = torch.tanh(lin("pre_logits.fc", norm("norm", h)))
    return lin("head", h).reshape(b, t, j, -1)


def test_perturbed_weights_match_reference(golden: Golden) -> None:
    # The golden weights have zero biases, unit LayerNorms and 50/50 stream fusion; perturb every parameter and
    # compare in float64, where any difference is a logic error rather than rounding.
    model = build_model(CONFIGS["tiny"], seed=3).double()
    gen = torch.Generator().manual_seed(4)
    for p in model.parameters():
        p.add_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.2)
    x = torch.from_numpy(golden["input_t27"]).double()
    with torch.inference_mode():
        out, ref = model(x), _reference_forward(model.state_dict(), 4, x)
    assert float(out.abs().max()) > 1.0  # not a degenerate output
    assert float((out - ref).abs().max()) <= 1e-10


def test_seeded_init_is_reproducible_and_leaves_global_rng() -> None:
    state = torch.random.get_rng_state()
    a, b, c = (build_model(CONFIGS["tiny"], seed=s).state_dict() for s in (7, 7, 8))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["joints_embed.weight"], c["joints_embed.weight"])


def test_checkpoint_into_wrong_config_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"does not fit.*dim_feat=64.*depth=2.*missing keys.*shape mismatches"):
        build_model(CONFIGS["small"], FIXTURES / "tiny_official.bin")


def test_resolve_config_by_name_and_path(tmp_path: Path) -> None:
    name, hp = resolve_config("tiny")
    assert name == "tiny" and hp == CONFIGS["tiny"]
    hp["depth"] = 99
    assert CONFIGS["tiny"]["depth"] == 2  # callers get a copy
    path = tmp_path / "my_model.json"
    path.write_text(json.dumps({**CONFIGS["tiny"], "qk_scale": None, "params": TINY_PARAMS}))
    assert resolve_config(str(path)) == ("my_model", CONFIGS["tiny"])


def test_resolve_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown model config 'huge'.*full, lite, small, tiny"):
        resolve_config("huge")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CONFIGS["tiny"], "dim_fet": 64, "colour": "red"}))
    with pytest.raises(ValueError, match=r"unknown keys \['colour', 'dim_fet'\]"):
        resolve_config(str(bad))
    bad.write_text(json.dumps({**CONFIGS["tiny"], "params": 1}))
    with pytest.raises(ValueError, match=r'"params" is 1 but these hyperparameters build 294,023'):
        resolve_config(str(bad))
    bad.write_text(json.dumps({**CONFIGS["tiny"], "depth": "2"}))
    with pytest.raises(ValueError, match="depth must be a int"):
        resolve_config(str(bad))
    bad.write_text(json.dumps({**CONFIGS["tiny"], "num_heads": 5}))
    with pytest.raises(ValueError, match="not divisible by num_heads=5"):
        resolve_config(str(bad))
    with pytest.raises(ValueError, match="cannot read model config"):
        resolve_config(str(tmp_path / "missing.json"))


@pytest.mark.skipif(not os.environ.get("MOTIONLIFT_SHARED"), reason="set MOTIONLIFT_SHARED to the shared directory")
def test_small_reference() -> None:
    ref = Path(os.environ["MOTIONLIFT_SHARED"]) / "reference"
    model = build_model(CONFIGS["small"], ref / "small_official.bin")
    mm = build_model(CONFIGS["small"], ref / "small_mmpose.pth")
    assert count_parameters(model) == json.loads((ref / "meta.json").read_text())["configs"]["small"]["params"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), mm.state_dict().values(), strict=True))
    with np.load(ref / "golden.npz") as g, torch.inference_mode():
        for t in LENGTHS:
            x = torch.from_numpy(g[f"input_t{t}"])
            assert max_err(model(x), g[f"small_out_t{t}"]) <= TOL
            assert max_err(run_flip_tta(model, x), g[f"small_out_flip_t{t}"]) <= TOL
