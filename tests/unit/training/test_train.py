"""Training and evaluation of the lifter on a small slice of real motion capture (tests/fixtures/README.md).

The fixture is 600 frames of CMU martial arts at 30 fps; its last quarter is the held-out split. Models here
are micro DSTformers (a few tens of thousands of parameters): the point is that the pipeline runs end to end
and learns, not accuracy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from service.cli import main
from service.core.keypoints import normalise_crop, normalise_pixel
from service.model.checkpoint import load_state_dict
from service.model.export import read_meta
from service.training import synth
from service.training.config import TrainConfig
from service.training.evaluate import evaluate_model
from service.training.metrics import accel_error, mpjpe, p_mpjpe
from service.training.mocap import Sequence, WindowSampler, load_mocap
from service.training.train import train
from service.training.weights import load_lifter
from tests.data import FIXTURES

FIXTURE = FIXTURES / "mocap_cmu_martial06.npz"
MICRO = {"dim_feat": 32, "dim_rep": 32, "depth": 1, "num_heads": 4, "mlp_ratio": 2, "maxlen": 16}


def micro_config(out: Path, steps: int, **kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "data": str(FIXTURE),
        "out": str(out),
        "overrides": MICRO,
        "window": 16,
        "steps": steps,
        "batch": 8,
        "lr": 3e-3,
        "warmup": 5,
        "eval_every": 10,
        "checkpoint_every": 10,
        "heldout_windows": 4,
        "threads": 1,
    }
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world() -> npt.NDArray[np.float64]:
    return load_mocap(FIXTURE, "train")[0].joints[:40]


def test_views_are_normalised_as_the_serving_path(world: npt.NDArray[np.float64]) -> None:
    rng = np.random.default_rng(0)
    camera = synth.random_camera(rng, world)
    uv, target_px, factor, cam = synth.project(camera, world)
    kp = synth.corrupt(rng, uv, synth.EVAL_NOISE)
    assert (kp[..., 2] == 0).any() and (kp[..., 2] < 1).mean() > 0.9
    for mode, expected in (
        ("pixel", normalise_pixel(kp, camera.width, camera.height)),
        ("crop", normalise_crop(kp)),
    ):
        inputs, target, mm = synth.normalise(kp, target_px, factor, camera, mode)
        np.testing.assert_array_equal(inputs, expected)
        # Clean 2D: the target's x, y overlay the input (joint3d_image), z is root-relative per frame.
        clean, target, mm = synth.normalise(synth.corrupt(rng, uv, synth.CLEAN), target_px, factor, camera, mode)
        np.testing.assert_allclose(clean[..., :2], target[..., :2], atol=1e-5)
        assert (clean[..., 2] == 1).all() and np.abs(target[:, 0, 2]).max() < 1e-6
        # De-normalised with the 2.5D factor, the pose is the metric one up to weak perspective (cm).
        rel = (target - target[:, :1]) * mm[:, None, None]
        assert mpjpe(rel.astype(np.float64), cam - cam[:, :1]).mean() < 150


def test_mirror_and_bone_augmentation_keep_a_skeleton(world: npt.NDArray[np.float64]) -> None:
    rng = np.random.default_rng(1)
    out = synth.augment(rng, world, bone_sigma=0.0, mirror=True)
    again = synth.augment(np.random.default_rng(1), world, bone_sigma=0.0, mirror=True)
    np.testing.assert_array_equal(out, again)
    bones = [np.linalg.norm(out[:, j] - out[:, p], axis=-1) for j, p in enumerate(synth.PARENTS) if p >= 0]
    original = [np.linalg.norm(world[:, j] - world[:, p], axis=-1) for j, p in enumerate(synth.PARENTS) if p >= 0]
    # Without bone noise a mirror swaps the left and right limbs, whose lengths then trade places.
    assert sorted(np.round([b.mean() for b in bones], 3)) == sorted(np.round([b.mean() for b in original], 3))


def _pose_of(camera: synth.Camera) -> tuple[float, float, float]:
    """(focal / half the short side, elevation, |roll|) in degrees, read back from the camera's rotation:
    roll turns the image plane about the optical axis, so the world's up leaves the image's vertical."""
    rot = camera.rotation
    elevation = math.degrees(math.asin(-rot[2, 1]))  # forward's drop below the horizon (world Y up)
    roll = math.degrees(math.atan2(abs(rot[0, 1]), abs(rot[1, 1])))
    return camera.focal / (min(camera.width, camera.height) / 2.0), elevation, roll


@pytest.mark.parametrize("name", ["standard", "varied", "unseen"])
def test_cameras_come_from_their_ranges(world: npt.NDArray[np.float64], name: str) -> None:
    ranges = synth.CAMERAS[name]
    rng = np.random.default_rng(3)
    signs = set()
    for _ in range(60):
        camera = synth.random_camera(rng, world, ranges)
        focal, elevation, roll = _pose_of(camera)
        assert ranges.focal[0] - 1e-9 <= focal <= ranges.focal[1] + 1e-9
        assert ranges.elevation[0] - 1e-6 <= elevation <= ranges.elevation[1] + 1e-6
        assert ranges.roll[0] - 1e-6 <= roll <= ranges.roll[1] + 1e-6
        signs.add(np.sign(camera.rotation[0, 1]))
        _, _, _, cam = synth.project(camera, world)
        assert cam[..., 2].min() >= synth.MIN_DEPTH_MM - 1e-6  # every joint in front of the camera
    assert signs == ({0.0} if name == "standard" else {-1.0, 1.0})  # rolled both ways
    # The unseen cameras lie outside the varied training ranges on every axis.
    varied, unseen = synth.CAMERAS["varied"], synth.CAMERAS["unseen"]
    assert unseen.focal[1] <= varied.focal[0] and unseen.elevation[0] >= varied.elevation[1]
    assert unseen.roll[0] >= varied.roll[1]


def test_standard_cameras_are_the_default_draws(world: npt.NDArray[np.float64]) -> None:
    """Without roll no extra number is drawn: the held-out cameras of earlier evaluations stay the same."""
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    first, second = synth.random_camera(a, world), synth.random_camera(b, world, synth.CAMERAS["standard"])
    np.testing.assert_array_equal(first.rotation, second.rotation)
    assert a.random() == b.random()


def test_sampler_never_crosses_a_glitch() -> None:
    joints = np.zeros((400, 17, 3))
    joints[:, 1:, 1] = np.arange(1, 17)[None, :] * 10.0
    joints[200, 5] += 1000.0  # a 1 m jump in 1/120 s
    seq = Sequence("glitchy", "cmu", "x", "salsa", 120.0, joints)
    assert seq.glitch.sum() == 2  # into and out of the bad frame
    windows = WindowSampler([seq]).sample(np.random.default_rng(0), 64, 20)
    np.testing.assert_array_equal(windows[..., 5, :], np.broadcast_to([0.0, 50.0, 0.0], windows[..., 5, :].shape))


def test_metrics() -> None:
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(5, 17, 3)) * 300
    angle = 0.7
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    moved = 1.3 * gt @ rot + 50.0
    assert mpjpe(moved, gt).mean() > 100
    np.testing.assert_allclose(p_mpjpe(moved, gt), 0.0, atol=1e-6)
    assert accel_error(gt + np.arange(5)[:, None, None] * 10.0, gt).max() < 1e-9  # constant velocity


@pytest.mark.slow
def test_train_loss_falls_resumes_and_evaluates(tmp_path: Path) -> None:
    torch.manual_seed(0)
    result = train(micro_config(tmp_path / "run", steps=40))
    rows = (tmp_path / "run" / "curve.csv").read_text().splitlines()
    header = rows[0].split(",")
    curve = [dict(zip(header, map(float, r.split(",")), strict=True)) for r in rows[1:]]
    assert [r["step"] for r in curve] == [10, 20, 30, 40]
    assert curve[-1]["train_loss"] < 0.9 * curve[0]["train_loss"]
    assert curve[-1]["heldout_clean_mm"] < 0.8 * curve[0]["heldout_clean_mm"]

    # Interrupted after 20 steps and resumed: the same weights as the uninterrupted run.
    assert train(micro_config(tmp_path / "split", steps=40, until=20))["weights"] is None
    cfg = micro_config(tmp_path / "split", steps=40)
    with pytest.raises(ValueError, match="other settings"):
        train(micro_config(tmp_path / "split", steps=40, lr=1e-4))
    train(cfg)
    a, _ = load_lifter(result["weights"])
    b, _ = load_lifter(tmp_path / "split" / "model.safetensors")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=name)

    # Trained on from the 40-step weights: its first held-out point is theirs, not a random model's.
    more = train(micro_config(tmp_path / "more", steps=10, init=str(result["weights"])))
    first = (tmp_path / "more" / "curve.csv").read_text().splitlines()[1].split(",")
    assert float(first[header.index("heldout_clean_mm")]) < 0.9 * curve[0]["heldout_clean_mm"]
    assert more["weights"] is not None
    with pytest.raises(ValueError, match="other hyperparameters"):
        train(micro_config(tmp_path / "wide", steps=10, init=str(result["weights"]), overrides={"dim_feat": 32}))

    model, spec = load_lifter(result["weights"])
    report = evaluate_model(model, spec["window"], str(FIXTURE), modes=("pixel", "crop"))
    assert set(report) == {"pixel/clean", "pixel/noisy", "crop/clean", "crop/noisy"}
    summary = report["pixel/clean"]["all"]
    assert summary["frames"] == 150 and all(np.isfinite(v) for v in summary.values())
    assert summary["p_mpjpe"] <= summary["mpjpe"]


def test_cli_train_evaluate_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w" / "micro.safetensors"
    sets = [x for k, v in MICRO.items() for x in ("--set", f"{k}={v}")]
    args = ["train", "--data", str(FIXTURE), "--out", str(tmp_path / "run"), "--window", "16", "--steps", "3"]
    args += ["--batch", "4", "--heldout-windows", "2", "--threads", "1", "--fp16", "--weights", str(weights), *sets]
    assert main([*args, "--name", "micro", "--cameras", "varied"]) == 0
    spec = json.loads(weights.with_suffix(".json").read_text())
    assert spec["precision"] == "fp16" and spec["config"] == "micro" and spec["window"] == 16
    assert spec["training"]["cameras"] == "varied"
    assert all(v.dtype == torch.float32 for v in load_state_dict(weights).values())
    report = tmp_path / "eval.json"
    evaluate = ["evaluate", "--data", str(FIXTURE), "--weights", str(weights), "--json", str(report)]
    code = main([*evaluate, "--threads", "1", "--cameras", "standard,unseen"])
    printed = capsys.readouterr().out
    assert code == 0 and "**all**" in printed and "### pixel/noisy/unseen 2D" in printed
    reported = json.loads(report.read_text())["micro"]["report"]
    assert set(reported) == {"pixel/clean", "pixel/noisy", "pixel/clean/unseen", "pixel/noisy/unseen"}
    assert reported["pixel/noisy"]["all"]["frames"] == 150
    assert reported["pixel/clean/unseen"]["all"]["mpjpe"] != reported["pixel/clean"]["all"]["mpjpe"]
    assert main([*evaluate, "--cameras", "sideways"]) == 2
    assert "unknown cameras sideways: use standard, varied, unseen" in capsys.readouterr().err
    out = tmp_path / "model.pt"
    card = "service/model/weights/CARD.md"
    assert main(["export", "--config", str(weights.with_suffix(".json")), "--checkpoint", str(weights),
                 "--card", card, "--out", str(out)]) == 0  # fmt: skip
    meta = read_meta(out)
    assert meta["trained"] is True and meta["card"] == card and meta["window"] == 16 and meta["config"] == "micro"
