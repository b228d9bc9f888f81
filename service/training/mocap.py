"""Motion-capture sequences (17 Human3.6M joints, millimetres, world frame, Y up) and window sampling.

Two sources are read:
- the shared data set directory (``index.json`` + ``hdm05_h36m17.npz`` + ``cmu_h36m17.npz``, described in its
  README): HDM05 ``split=test`` (actors mm and tr) is held out and never trained on, everything else trains;
- one ``.npz`` file with ``joints3d_mm [T, 17, 3]`` and ``fps`` (the test fixture): one sequence, whose last
  quarter is the held-out split, so a test can train and evaluate on a few hundred frames.

The CMU set holds a few capture glitches (README: root-relative joint speed above 12 m/s); training windows
that contain one are never sampled (``Sequence.glitch``). Training runs at about 30 fps, the frame rate of
the video the service lifts: windows take every ``stride``-th captured frame, with the stride drawn around
``fps / 30`` (speed augmentation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

TARGET_FPS = 30.0
GLITCH_SPEED_M_S = 12.0  # the mocap README's threshold for capture glitches
_FILES = {"hdm05": "hdm05_h36m17.npz", "cmu": "cmu_h36m17.npz"}


@dataclass
class Sequence:
    """One captured sequence. ``joints``: float64 ``[N, 17, 3]`` mm, Y up. ``glitch[i]`` is True when the
    move from frame i-1 to frame i is faster than ``GLITCH_SPEED_M_S`` for some root-relative joint."""

    key: str
    source: str
    actor: str
    action: str
    fps: float
    joints: F64
    glitch: npt.NDArray[np.bool_] = field(init=False)
    _glitch_cumsum: npt.NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.glitch = glitch_frames(self.joints, self.fps)
        self._glitch_cumsum = np.concatenate([[0], np.cumsum(self.glitch)])

    def clean(self, start: int, span: int) -> bool:
        """Whether captured frames ``start .. start+span-1`` hold no glitch (moves into frames start+1..)."""
        return bool(self._glitch_cumsum[start + span] - self._glitch_cumsum[start + 1] == 0)


def glitch_frames(joints: F64, fps: float) -> npt.NDArray[np.bool_]:
    """Per frame: True where some root-relative joint moved faster than 12 m/s since the previous frame."""
    rel = joints - joints[:, :1]
    speed = np.zeros(len(joints))
    if len(joints) > 1:
        speed[1:] = np.linalg.norm(np.diff(rel, axis=0), axis=-1).max(axis=-1) * fps / 1000.0
    out: npt.NDArray[np.bool_] = speed > GLITCH_SPEED_M_S
    return out


def load_mocap(path: str | Path, split: str) -> list[Sequence]:
    """The ``split`` ("train" or "test") sequences of a data directory or of one fixture ``.npz`` file.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for an unknown split or a file without
    the expected arrays.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"motion-capture data not found: {path}")
    if path.is_file():
        return _load_single(path, split)
    index = json.loads((path / "index.json").read_text(encoding="utf-8"))
    arrays = {src: np.load(path / name) for src, name in _FILES.items() if (path / name).is_file()}
    out = []
    for row in index["sequences"]:
        if row["split"] != split or row["source"] not in arrays:
            continue
        joints = np.asarray(arrays[row["source"]][row["key"]], dtype=np.float64)
        out.append(Sequence(row["key"], row["source"], str(row["actor"]), row["action"], float(row["fps"]), joints))
    if not out:
        raise ValueError(f"{path}: no sequences in split {split!r}")
    return out


def _load_single(path: Path, split: str) -> list[Sequence]:
    with np.load(path) as z:
        if "joints3d_mm" not in z.files:
            raise ValueError(f"{path}: expected an array 'joints3d_mm' [T, 17, 3] (and 'fps')")
        joints = np.asarray(z["joints3d_mm"], dtype=np.float64)
        fps = float(z["fps"]) if "fps" in z.files else TARGET_FPS
    cut = len(joints) * 3 // 4
    part = joints[:cut] if split == "train" else joints[cut:]
    return [Sequence(f"{path.stem}/{split}", "file", "fixture", path.stem, fps, part)]


def nominal_stride(fps: float) -> int:
    """Captured frames per frame at ~30 fps (4 at 120 fps, 2 at 60 fps, 1 at 30 fps)."""
    return max(1, round(fps / TARGET_FPS))


def subsample(seq: Sequence) -> F64:
    """The sequence at ~30 fps (every ``nominal_stride``-th frame from the first): what evaluation lifts."""
    return seq.joints[:: nominal_stride(seq.fps)]


class WindowSampler:
    """Draws windows of ``T`` frames at ~30 fps from sequences, never across a capture glitch.

    ``source_weights`` gives each source's share of the windows (e.g. HDM05 and CMU half each, although CMU
    holds three times the frames): the held-out actions are HDM05's. Within a source, sequences are drawn in
    proportion to their length. ``speed`` is the range of the speed augmentation: the stride is
    ``round(nominal * u)`` with ``u`` uniform in it (120 fps: strides 2..6 for the default 0.6..1.5).
    """

    def __init__(
        self,
        sequences: list[Sequence],
        source_weights: dict[str, float] | None = None,
        speed: tuple[float, float] = (0.6, 1.5),
    ) -> None:
        if not sequences:
            raise ValueError("no sequences to sample from")
        self.sequences = sequences
        self.speed = speed
        weights = np.array([len(s.joints) for s in sequences], dtype=np.float64)
        if source_weights:
            for src in {s.source for s in sequences}:
                mask = np.array([s.source == src for s in sequences])
                weights[mask] *= source_weights.get(src, 1.0) / weights[mask].sum()
        self.weights = weights / weights.sum()

    def sample(self, rng: np.random.Generator, batch: int, frames: int) -> F64:
        """``[batch, frames, 17, 3]`` world joints in mm. Raises ``ValueError`` if no sequence holds a
        glitch-free window of ``frames`` frames at any allowed stride (after 1,000 tries per window)."""
        out = np.empty((batch, frames, 17, 3))
        for b in range(batch):
            for _ in range(1000):
                seq = self.sequences[rng.choice(len(self.sequences), p=self.weights)]
                nominal = nominal_stride(seq.fps)
                lo = max(1, round(nominal * self.speed[0]))
                stride = max(lo, round(nominal * rng.uniform(*self.speed)))
                # A sequence too short for this stride may still fit a slower-motion (smaller) stride.
                while stride > lo and (frames - 1) * stride + 1 > len(seq.joints):
                    stride -= 1
                span = (frames - 1) * stride + 1
                if span > len(seq.joints):
                    continue
                start = int(rng.integers(0, len(seq.joints) - span + 1))
                if seq.clean(start, span):
                    out[b] = seq.joints[start : start + span : stride]
                    break
            else:
                raise ValueError(f"no glitch-free window of {frames} frames in these sequences")
        return out
