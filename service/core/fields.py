"""What each option field means, in one sentence each: the REST schema's descriptions, ``/lift/file``'s query
parameters and the CLI's help are derived from it (``service.core.options`` holds the fields and their rules)."""

from __future__ import annotations

from typing import Final

from service.core.options import LIFT_FIELDS
from service.core.stream_options import STREAM_FIELDS

FIELD_DOCS: Final[dict[str, str]] = {
    "format": "joint layout: h36m (Human3.6M-17), coco (COCO-17: RTMPose, YOLO-pose, MMPose) or halpe26 "
    "(Halpe-26: AlphaPose)",
    "image_size": "[width, height] of the video in pixels (each 1 to 100000), when known",
    "normalization": "pixel: by the image size (the default when image_size is given); crop: by the square "
    "around the whole sequence's bounding box (the default otherwise; not for streams); none: already "
    "normalised to [-1, 1]",
    "flip": "flip test-time augmentation (default true; twice the compute, more accurate)",
    "rootrel": "root-centred output: the pelvis at the origin in every frame (the same as root: relative)",
    "pixels": "also answer in pixels (joints3d_px); default: whenever pixel normalization is used",
    "overlap": "frames shared by consecutive windows, cross-faded; default window / 4; 0 = the official clipping",
    "window": "frames per stream window, at most the model's; default the model's",
    "hop": "frames one look-ahead window answers; default 1 (causal streams: always 1)",
    "mode": "causal: frame t from the window ending at t; lookahead: once frame t + lookahead arrived",
    "lookahead": "later frames a look-ahead stream waits for (>= 1, < window); 0 in causal mode",
    "track_expiry_s": "seconds of silence after which a stream forgets a track; default 10",
    "min_track_frames": "a track needs this many detected frames (a frame is detected unless all its scores are 0); "
    "default: none for tracks you send, 30 (about a second) for detector files",
    "max_gap_frames": "cut tracks around gaps of more than this many undetected frames (the pieces are named "
    "<id>-2, <id>-3...) and trim undetected ends; default: tracks whole for tracks you send, 30 for detector files",
    "person": "which tracks to lift: all (default), longest (most detected frames), largest (mean box), "
    "most-central, or one track's id",
    "smoothing": "none (default), savgol (Savitzky-Golay over smoothing_window frames; a stream answers "
    "smoothing_window // 2 frames later) or one-euro (the 1-euro filter: causal, no added delay); see "
    "service/core/smoothing.py",
    "smoothing_window": "savgol: frames in the window, odd, 5 to 99 (default 9)",
    "smoothing_cutoff": "one-euro: the cutoff at rest, Hz (default 1.0; lower is smoother)",
    "smoothing_beta": "one-euro: how much the cutoff rises with speed, Hz per answer unit per second (default 5; "
    "higher lags less)",
    "fps": "the video's frames per second (default 30): one-euro's time base",
    "subject_height_m": "the subject's standing height in metres (0.5 to 2.5): joints3d in metres (one scale per "
    "track; see service/core/scale.py); default: the image's units",
    "root": "where the pelvis is: image (default: x, y overlay the 2D input, the official output), relative (at the "
    "origin in every frame) or trajectory (placed in the camera's 3D space from its 2D size and position; needs "
    "image_size; see service/core/trajectory.py)",
    "focal_length_px": "root trajectory: the camera's focal length in pixels (default: assumed, the image diagonal)",
    "policy": "latest (default: for live video, a newer frame replaces a waiting one, skipped frames are counted) "
    "or all (for files and recordings: every frame is answered and the sender is slowed down instead)",
}

assert set(FIELD_DOCS) == set(LIFT_FIELDS) | set(STREAM_FIELDS)
