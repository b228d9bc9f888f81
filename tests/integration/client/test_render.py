"""``motionlift render`` through the real service: an MP4 and a GIF with one picture per video frame, the duration
the frame rate gives, a skeleton drawn in both panels; the original video under the 2D panel with ``--video``."""

from __future__ import annotations

import json
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from service.cli import main
from tests.conftest import Served
from tests.data import FIXTURES

Pixels = npt.NDArray[np.uint8]
# imageio-ffmpeg 0.8's read_frames closes FFmpeg's stdout only when FFmpeg is still running at the end; once it has
# exited by itself (the whole video read) the pipe is left to the garbage collector, which warns. Not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Exception ignored in:pytest.PytestUnraisableExceptionWarning")


def short_request(tmp_path: Path, frames: int = 40) -> Path:
    body = json.loads((FIXTURES / "martial_request.json").read_text())
    body["keypoints"] = body["keypoints"][:frames]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    return path


def read_video(path: Path) -> tuple[dict[str, object], list[Pixels]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
        width, height = meta["size"]
        return meta, [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]
    finally:
        reader.close()  # ends FFmpeg and its pipe


def bright(panel: Pixels) -> int:
    """Pixels of a drawn skeleton (joints are near white, bones saturated): far from the dark background."""
    return int((panel.astype(int).sum(axis=-1) > 250).sum())


def test_an_mp4_and_a_gif_of_the_lifted_sequence(served: Served, tmp_path: Path) -> None:
    request = short_request(tmp_path)
    mp4, gif = tmp_path / "result.mp4", tmp_path / "result.gif"
    assert main(["render", str(request), "--url", served.rest_url, "--out", str(mp4), "--fps", "25"]) == 0
    meta, pictures = read_video(mp4)
    assert (len(pictures), meta["size"], meta["fps"], meta["duration"]) == (40, (1080, 540), 25.0, 1.6)
    for picture in (pictures[0], pictures[-1]):
        assert bright(picture[:, :540]) > 200 and bright(picture[:, 540:]) > 200  # 2D left, 3D right
    assert main(["render", str(request), "--url", served.rest_url, "--out", str(gif), "--size", "200"]) == 0
    with Image.open(gif) as image:
        assert (getattr(image, "n_frames", 1), image.size) == (40, (400, 200))
        assert image.info["duration"] in (30, 40)  # GIF delays are in 10 ms steps: 33.3 ms is written as 30 or 40


def test_the_2d_panel_draws_over_the_original_video(served: Served, tmp_path: Path) -> None:
    video = tmp_path / "input.mp4"
    writer = imageio_ffmpeg.write_frames(str(video), (320, 180), fps=25, macro_block_size=2)
    writer.send(None)
    for _ in range(40):
        writer.send(np.full((180, 320, 3), (200, 40, 40), np.uint8))  # a red picture
    writer.close()
    out = tmp_path / "over.mp4"
    flags = ["--url", served.rest_url, "--out", str(out), "--video", str(video), "--image-size", "320", "180"]
    assert main(["render", str(short_request(tmp_path)), *flags]) == 0
    meta, pictures = read_video(out)
    assert meta["fps"] == 25.0 and len(pictures) == 40  # the video's frame rate by default
    left = pictures[10][:, :540].astype(int)
    reddish = (left[..., 0] > 150) & (left[..., 1] < 90)
    assert reddish.mean() > 0.3  # the frame fills the panel's box (16:9 in a square)


def test_render_refuses_what_it_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(short_request(tmp_path)), "--out", str(tmp_path / "x.avi")]) == 2
    assert (
        capsys.readouterr().err
        == f"motionlift render: --out must end in .mp4, .gif or .png, got {tmp_path / 'x.avi'}\n"
    )
    assert main(["render", str(short_request(tmp_path)), "--out", str(tmp_path / "x.mp4"), "--size", "101"]) == 2


def test_a_still_frame_as_png(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "still.png"
    assert (
        main(["render", str(short_request(tmp_path)), "--url", served.rest_url, "--out", str(out), "--frame", "7"]) == 0
    )
    with Image.open(out) as image:
        picture = np.asarray(image.convert("RGB"), np.uint8)
    assert picture.shape == (540, 1080, 3) and bright(picture[:, :540]) > 200 and bright(picture[:, 540:]) > 200


def test_a_track_cut_by_max_gap_frames_draws_its_own_2d(served: Served, tmp_path: Path) -> None:
    """Person 2 of the AlphaPose sample is missing from frame 2: with max_gap_frames 0 it is answered as "2" and
    "2-2", and each piece is drawn from person 2's own keypoints."""
    out = tmp_path / "cut.png"
    source = str(FIXTURES / "detectors" / "alphapose_halpe26_tracked.json")
    flags = ["--image-size", "1920", "1080", "--min-track-frames", "1", "--max-gap-frames", "0", "--frame", "3"]
    assert main(["render", source, "--url", served.rest_url, "--out", str(out), *flags]) == 0
    with Image.open(out) as image:
        picture = np.asarray(image.convert("RGB"), np.uint8)
    assert bright(picture[:, :540]) > 100 and bright(picture[:, 540:]) > 100
