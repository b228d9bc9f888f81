"""``motionlift render INPUT --out result.mp4|.gif|still.png``: lift INPUT (anything ``motionlift lift`` reads) over
the service, then draw the 2D input beside the 3D skeleton (``service.motion.render``) into a video, as MotionBERT's
``infer_wild.py`` does (``still.png``: one frame of it). ``--video VIDEO`` draws the 2D keypoints over the original
frames. FFmpeg comes from the ``imageio-ffmpeg`` package, which bundles it (``pip install 'motionlift[render]'``): no
system binary. MP4 is H.264 (yuv420p, plays everywhere); GIF is written by the same FFmpeg. A progress line counts
the frames on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from service.client.command import add_input_arguments, read_and_lift

SUFFIXES = (".mp4", ".gif", ".png")


def add_arguments(render: argparse.ArgumentParser) -> None:
    add_input_arguments(render)
    render.add_argument("--out", type=Path, required=True, help="result.mp4, result.gif, or still.png (one frame)")
    render.add_argument("--frame", type=int, default=None, help="with --out still.png: which frame (default: middle)")
    render.add_argument("--video", type=Path, default=None, help="the original video: 2D keypoints drawn over it")
    render.add_argument("--size", type=int, default=540, help="height of the picture in pixels (even; width 2x)")


def _fail(message: str, code: int) -> int:
    print(f"motionlift render: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in SUFFIXES:
        return _fail(f"--out must end in .mp4, .gif or .png, got {args.out}", 2)
    if args.size < 64 or args.size % 2:
        return _fail("--size must be an even number of pixels, at least 64", 2)
    try:
        import imageio_ffmpeg

        from service.motion import render
    except ImportError as exc:
        return _fail(f"rendering needs Pillow and imageio-ffmpeg: pip install 'motionlift[render]' ({exc})", 2)
    reader, video, fps = None, None, args.fps
    if args.video is not None:
        reader = imageio_ffmpeg.read_frames(str(args.video))
        try:
            video, meta = _video(reader)
        except (OSError, RuntimeError, StopIteration) as exc:
            reader.close()
            return _fail(f"cannot read the video {args.video}: {exc}", 2)
        fps = fps or float(meta.get("fps") or 30.0)
    try:
        return _render(args, imageio_ffmpeg, render, video, fps or 30.0)
    finally:
        if reader is not None:
            reader.close()  # ends FFmpeg and its pipe, however much of the video was read


def _render(args: argparse.Namespace, imageio_ffmpeg: Any, render: Any, video: Any, fps: float) -> int:
    lifted = read_and_lift(args, "render")
    if isinstance(lifted, int):
        return lifted
    data, answer = lifted
    tracks = _tracks(data, answer, render.Track2D3D)
    image_size = None if args.image_size is None else (args.image_size[0], args.image_size[1])
    pictures = render.frames(tracks, data.frames, size=args.size, layout_2d=data.layout, image_size=image_size,
                             video=video)  # fmt: skip
    if args.out.suffix.lower() == ".png":
        return _still(args.out, pictures, data.frames, args.frame)
    _write(imageio_ffmpeg, args.out, pictures, data.frames, fps, args.size)
    print(f"\nwrote {args.out}: {data.frames} frames at {fps:g} fps", file=sys.stderr)
    return 0


def _still(out: Path, pictures: Iterator[Any], total: int, frame: int | None) -> int:
    """One frame as a PNG (README pictures)."""
    from PIL import Image

    wanted = total // 2 if frame is None else frame
    if not 0 <= wanted < total:
        return _fail(f"--frame must be between 0 and {total - 1}, got {wanted}", 2)
    for n, picture in enumerate(pictures):
        if n == wanted:
            Image.fromarray(picture).save(out)
            print(f"wrote {out}: frame {wanted} of {total}", file=sys.stderr)
            return 0
    return _fail("no frame was drawn", 1)


def _tracks(data: Any, answer: Any, kind: Any) -> list[Any]:
    """Each answered track with its 2D keypoints: the file's track of the same id, or the one a cut by
    ``max_gap_frames`` came from (``<id>-2``...), from the answer's first frame on. The service answers no other id."""
    by_id = {t.id: t for t in data.tracks}
    out = []
    for result in answer.tracks:
        source = by_id.get(result.id) or by_id[result.id.rsplit("-", 1)[0]]
        first = result.start - source.start
        flat = np.asarray(source.keypoints[first : first + len(result.joints3d)], np.float64)
        out.append(kind(result.start, flat, np.asarray(result.joints3d, np.float64)))
    return out


def _video(reader: Any) -> tuple[Iterator[Any], dict[str, Any]]:
    """The frames of an ``imageio_ffmpeg.read_frames`` reader as RGB arrays, and its metadata."""
    meta: dict[str, Any] = next(reader)
    width, height = meta["size"]
    frames = (np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader)
    return frames, meta


def _write(imageio_ffmpeg: Any, out: Path, pictures: Iterator[Any], total: int, fps: float, size: int) -> None:
    gif = out.suffix.lower() == ".gif"
    writer = imageio_ffmpeg.write_frames(
        str(out),
        (2 * size, size),
        fps=fps,
        codec="gif" if gif else "libx264",
        pix_fmt_out="rgb8" if gif else "yuv420p",
        macro_block_size=2,
        quality=None if gif else 7,
    )
    writer.send(None)  # starts FFmpeg
    every = 1 if sys.stderr.isatty() else max(1, total // 10)  # a log file gets ten lines, a terminal one
    try:
        for n, picture in enumerate(pictures, start=1):
            writer.send(np.ascontiguousarray(picture))
            if n % every == 0 or n == total:
                print(f"\rrendering frame {n}/{total}", end="" if every == 1 else "\n", file=sys.stderr, flush=True)
    finally:
        writer.close()
