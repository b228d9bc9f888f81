"""Keypoint files as real 2D pose detectors write them -> tracks to lift: the readers the client's
``motionlift lift`` and the server's upload use. Imports only ``service.core``, ``service.errors``, numpy, scipy
and the standard library (import-linter contract in pyproject.toml).

Public API: ``read_keypoints``, ``parse``, ``detect``, ``KeypointFile``, ``TrackSequence``, ``KeypointFileError``,
``SOURCES``; the per-detector readers (``alphapose``, ``mmpose``, ``coco``, ``openpose``, ``mediapipe``, ``yolo``,
``body``) produce ``detections.Detection``s, which ``tracking.build_tracks`` turns into tracks.
"""

from service.formats.files import (
    SOURCES,
    KeypointFile,
    KeypointFileError,
    Source,
    TrackSequence,
    detect,
    parse,
    read_keypoints,
)

__all__ = [
    "SOURCES",
    "KeypointFile",
    "KeypointFileError",
    "Source",
    "TrackSequence",
    "detect",
    "parse",
    "read_keypoints",
]
