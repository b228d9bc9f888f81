"""Example bodies of ``POST /lift`` for the OpenAPI document: a real pose, so that a reader (and a schema-driven
fuzzer, which sends the examples first) sees what a detector writes and the service answers 200.

``COCO_WALK`` is ``tests/fixtures/example_request.json`` (README "A request"; a test keeps the two equal): two
frames of a person in COCO-17 order (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles), in pixels
of a 1920 x 1080 video, detector scores 0.9. Its joints span a real box, so it also passes crop normalisation.
"""

from __future__ import annotations

from typing import Any, Final

Pose = list[list[list[float]]]

COCO_WALK: Final[Pose] = [
    [
        [970.2, 378.1, 0.9], [960.4, 344.8, 0.9], [976.4, 344.8, 0.9], [952.4, 350.8, 0.9], [984.4, 350.8, 0.9],
        [996.9, 408.3, 0.9], [936.1, 406.2, 0.9], [994.5, 483.9, 0.9], [922.5, 480.3, 0.9], [989.4, 524.4, 0.9],
        [927.2, 521.1, 0.9], [983.8, 533.9, 0.9], [937.0, 531.6, 0.9], [994.5, 621.3, 0.9], [922.1, 618.9, 0.9],
        [1016.1, 733.0, 0.9], [904.2, 730.9, 0.9],
    ],
    [
        [969.9, 378.1, 0.9], [960.3, 345.6, 0.9], [976.3, 345.6, 0.9], [952.3, 351.6, 0.9], [984.3, 351.6, 0.9],
        [996.9, 408.3, 0.9], [936.0, 406.2, 0.9], [1001.3, 483.9, 0.9], [915.7, 478.7, 0.9], [1001.1, 526.8, 0.9],
        [913.8, 520.7, 0.9], [983.8, 533.9, 0.9], [936.9, 531.7, 0.9], [993.9, 622.2, 0.9], [922.1, 620.0, 0.9],
        [1012.1, 735.4, 0.9], [905.6, 733.4, 0.9],
    ],
]  # fmt: skip

ONE_PERSON: Final[dict[str, Any]] = {"keypoints": COCO_WALK, "format": "coco", "image_size": [1920, 1080]}

# The same walker and a second person 400 pixels to its left; ids are strings or integers, echoed as sent.
TWO_PERSONS: Final[dict[str, Any]] = {
    "tracks": [
        {"id": "a", "keypoints": COCO_WALK},
        {"id": 7, "keypoints": [[[x - 400.0, y, score] for x, y, score in frame] for frame in COCO_WALK]},
    ],
    "format": "coco",
    "image_size": [1920, 1080],
}

# OpenAPI Example Objects of the request body, by name.
REQUEST_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "one_person": {"summary": "one person, COCO-17 in pixels (two frames)", "value": ONE_PERSON},
    "two_persons": {"summary": "two persons (tracks) with their own ids", "value": TWO_PERSONS},
}
