"""``motionlift lift INPUT``: read a keypoint file (``service.formats``), lift it over REST or gRPC, write the
3D joints as JSON or ``.npy``.

Output: ``.npy`` holds ``joints3d`` (normalised units, H36M-17): ``[T, 17, 3]`` for one track, ``[P, T, 17, 3]``
for several, ``T`` the file's frames and NaN where a track has no frame. JSON mirrors ``POST /lift``'s answer
(``joints3d`` for one sequence, else ``tracks`` with each track's ``start`` frame), plus ``frame_ids``, the
input's ``source`` and ``format``, and ``latency_ms`` with the client's ``round_trip``. Without ``--out`` the
JSON goes to stdout. Exit codes: 0 done, 2 unreadable input or bad arguments, 1 the service refused or failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from service.core.fields import FIELD_DOCS
from service.core.options import CHOICES, LIFT_FIELDS
from service.formats import SOURCES

DEFAULT_URL = "http://127.0.0.1:8000"


def add_arguments(lift: argparse.ArgumentParser) -> None:
    """The flags of ``motionlift lift``: the input and the service (``add_input_arguments``), then the output."""
    add_input_arguments(lift)
    lift.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result.json, result.npy or motion.bvh (one file per track: motion_<id>.bvh; default: JSON to stdout)",
    )
    lift.add_argument("--height-m", type=float, default=1.70, help="the subject's height (BVH skeleton scale)")


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``read_and_lift`` needs: the input file, the service, one flag per ``LiftOptions`` field, the key and
    TLS (shared by ``motionlift lift`` and ``motionlift render``)."""
    parser.add_argument("input", type=Path, help="keypoint JSON file, or a folder of OpenPose *_keypoints.json files")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", default=None, help=f"REST base URL (default {DEFAULT_URL})")
    where.add_argument("--grpc", default=None, metavar="HOST:PORT", help="use gRPC at this target instead of REST")
    parser.add_argument("--input-format", choices=("auto", *SOURCES), default="auto",
                        help="layout of the file (default: detected)")  # fmt: skip
    add_option_flags(parser)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer")
    add_security_flags(parser)


def add_security_flags(parser: argparse.ArgumentParser) -> None:
    """The API key and TLS (``service.client.security``)."""
    parser.add_argument("--api-key", default=None, help="API key (default: $MOTIONLIFT_API_KEY)")
    parser.add_argument("--tls", action="store_true", help="gRPC over TLS (REST: an https:// --url)")
    parser.add_argument("--tls-ca", type=Path, default=None, help="CA bundle to trust (default: the system's)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="this client's certificate (mutual TLS)")
    parser.add_argument("--tls-key", type=Path, default=None, help="the private key of --tls-cert")


def security_of(args: argparse.Namespace) -> Any:
    from service.client import Security

    return Security(args.api_key, args.tls, args.tls_ca, args.tls_cert, args.tls_key).with_env()


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``LiftOptions`` field, with its doc; unset flags are ``None`` (the file's value, else the
    service's default). ``format`` defaults to the file's, or follows the joint count."""
    for name, kind in LIFT_FIELDS.items():
        flag, doc = "--" + name.replace("_", "-"), FIELD_DOCS[name]
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=doc)
        elif kind == "size":
            parser.add_argument(flag, type=float, nargs=2, metavar=("W", "H"), default=None, help=doc)
        elif name in CHOICES:
            parser.add_argument(flag, choices=CHOICES[name], default=None, help=doc)
        else:
            kinds = {"int": int, "number": float}
            parser.add_argument(flag, type=kinds.get(kind, str), default=None, help=doc)


def _fail(message: str, code: int, command: str = "lift") -> int:
    print(f"motionlift {command}: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    if args.out is not None and args.out.suffix not in (".json", ".npy", ".bvh"):
        return _fail(f"--out must end in .json, .npy or .bvh, got {args.out}", 2)
    lifted = read_and_lift(args)
    if isinstance(lifted, int):
        return lifted
    data, answer = lifted
    if args.out is not None and args.out.suffix == ".npy":
        np.save(args.out, _stacked(data.frames, answer))
    elif args.out is not None and args.out.suffix == ".bvh":
        return _write_bvh(args.out, answer, args.fps or 30.0, args.height_m)  # --fps: the option (also BVH's time)
    else:
        text = json.dumps(_document(data, answer), separators=(",", ":"))
        if args.out is None:
            print(text)
        else:
            args.out.write_text(text + "\n", encoding="utf-8")
    return 0


def read_and_lift(args: argparse.Namespace, command: str = "lift") -> tuple[Any, Any] | int:
    """Read ``args.input`` and lift it over the service: (the ``KeypointFile``, the ``LiftAnswer``), or the exit
    code after saying what went wrong (2: the input or a flag, 1: the service refused or failed)."""
    from service.client import MotionLiftClient
    from service.errors import InvalidInput, LiftError
    from service.formats import KeypointFileError, read_keypoints
    from service.formats.policy import file_options, reading_gap

    source = None if args.input_format == "auto" else args.input_format
    flags = {name: getattr(args, name) for name in LIFT_FIELDS if getattr(args, name) is not None}
    try:
        size = None if args.image_size is None else (args.image_size[0], args.image_size[1])
        data = read_keypoints(args.input, source, args.format, image_size=size, max_gap=reading_gap(flags))
    except (KeypointFileError, InvalidInput) as exc:
        return _fail(str(exc), 2, command)
    options = file_options(data, flags)  # the file's own options, then the flags, then the file defaults
    if data.single:
        keypoints, tracks = data.tracks[0].keypoints, None
    else:
        keypoints, tracks = None, {t.id: {"keypoints": t.keypoints, "start": t.start} for t in data.tracks}
    try:
        target = args.url or (None if args.grpc else DEFAULT_URL)
        with MotionLiftClient(target, grpc=args.grpc, tls=security_of(args)) as client:
            answer = client.lift(keypoints, tracks=tracks, timeout_s=args.timeout, **options)
    except LiftError as exc:
        field = f" at {exc.field}" if exc.field else ""
        return _fail(f"{type(exc).__name__}{field}: {exc.message}", 1, command)
    _report(answer)
    return data, answer


def _write_bvh(out: Path, answer: Any, fps: float, height_m: float) -> int:
    """One BVH per track (``service.motion.bvh``): ``out`` for one track, ``<stem>_<id>.bvh`` for several."""
    from service.motion import bvh

    several = len(answer.tracks) > 1
    for track in answer.tracks:
        path = out.with_name(f"{out.stem}_{_safe(track.id)}.bvh") if several else out
        try:
            path.write_text(bvh.write(track.joints3d, fps=fps, height_m=height_m), encoding="utf-8")
        except ValueError as exc:
            return _fail(f"track {track.id}: {exc}", 2)
        print(f"  wrote {path}", file=sys.stderr)
    return 0


def _safe(name: str) -> str:
    """A track id as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "track"


def _report(answer: Any) -> None:
    """What was lifted, on stderr: per track the video frames it covers, detected and filled."""
    frames = sum(len(t.joints3d) for t in answer.tracks)
    print(
        f"lifted {len(answer.tracks)} track(s), {frames} frames over {answer.transport} in "
        f"{answer.round_trip_ms:.0f} ms (service: {answer.latency.total_ms:.0f} ms, "
        f"inference {answer.latency.inference_ms:.0f} ms)",
        file=sys.stderr,
    )
    for t in answer.tracks:
        count = len(t.joints3d)
        print(
            f"  track {t.id}: frames {t.start}-{t.start + count - 1} ({count}), {count - len(t.filled)} detected, "
            f"{len(t.filled)} filled",
            file=sys.stderr,
        )


def _stacked(frames: int, answer: Any) -> Any:
    """``[T, 17, 3]`` for one track, ``[P, T, 17, 3]`` (NaN outside each track's frames) for several."""
    if len(answer.tracks) == 1:
        return answer.tracks[0].joints3d
    out = np.full((len(answer.tracks), frames, 17, 3), np.nan, np.float32)
    for p, result in enumerate(answer.tracks):
        out[p, result.start : result.start + len(result.joints3d)] = result.joints3d
    return out


def _floats(array: Any) -> Any:
    # float32 -> float64 is exact, so the JSON numbers read back as the very values the service answered.
    return None if array is None else array.astype(np.float64).tolist()


def _document(data: Any, answer: Any) -> dict[str, Any]:
    lat = answer.latency
    out: dict[str, Any] = {
        "input": {"source": data.source, "format": data.layout, "frames": data.frames},
        "request_id": answer.request_id,
        "transport": answer.transport,
    }
    if data.frame_ids:
        out["frame_ids"] = list(data.frame_ids)
    tracks = [
        {"id": t.id, "start": t.start, "frames": len(t.joints3d), "filled": list(t.filled)}
        | {"joints3d": _floats(t.joints3d)}
        | ({} if t.joints3d_px is None else {"joints3d_px": _floats(t.joints3d_px)})
        for t in answer.tracks
    ]
    if data.single:
        out.update({k: v for k, v in tracks[0].items() if k in ("frames", "joints3d", "joints3d_px")})
    else:
        out["tracks"] = tracks
    out.update(
        joint_names=list(answer.joint_names),
        coordinates=answer.coordinates,
        latency_ms={
            "preprocess": lat.preprocess_ms,
            "queue": lat.queue_ms,
            "inference": lat.inference_ms,
            "postprocess": lat.postprocess_ms,
            "total": lat.total_ms,
            "round_trip": round(answer.round_trip_ms, 3),
        },
        batch_size=lat.batch_size,
        batches=lat.batches,
        windows=lat.windows,
        model=answer.model,
    )
    return out
