"""What a caller asks for: the lift options, each rule and each message written once (a stream's own settings:
``service.core.stream_options``).

Every edge builds these types from its own wire form -- REST JSON and keypoint files through ``from_mapping``,
gRPC messages field by field, the Python client and the CLI from keyword arguments -- and the core checks them
with ``check`` against the served model. So a mistake gets the same ``InvalidInput`` (HTTP 422, gRPC
INVALID_ARGUMENT) naming the same field whichever way it came in. ``prefix`` puts the field where the wire
nests it (a stream's options are ``config.<name>``).

The field names are the wire names: REST's JSON keys, the proto fields (``LiftRequest``, ``StreamConfig``), the
client's keyword arguments and the CLI's flags; the REST schema and the CLI help are derived from
``service.core.fields.FIELD_DOCS``, and tests check the proto against the dataclass fields. This module is part of
the contract the Python client shares with the service, so it imports nothing but the error table (and numpy's
boolean type).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final, Literal

from service.core.values import typed
from service.errors import InvalidInput

Format = Literal["h36m", "coco", "halpe26"]
Normalization = Literal["pixel", "crop", "none"]
Mode = Literal["causal", "lookahead"]

# Joints per frame of each accepted keypoint format (converted to H36M-17 as MotionBERT's own demo does).
FORMATS: Final[dict[str, int]] = {"h36m": 17, "coco": 17, "halpe26": 26}
NORMALIZATIONS: Final[tuple[str, ...]] = ("pixel", "crop", "none")
MODES: Final[tuple[str, ...]] = ("causal", "lookahead")
POLICIES: Final[tuple[str, ...]] = ("latest", "all")
SMOOTHINGS: Final[tuple[str, ...]] = ("none", "savgol", "one-euro")
ROOTS: Final[tuple[str, ...]] = ("image", "relative", "trajectory")
FOCAL_PX: Final = (1.0, 1_000_000.0)
CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "format": tuple(FORMATS),
    "normalization": NORMALIZATIONS,
    "mode": MODES,
    "policy": POLICIES,
    "smoothing": SMOOTHINGS,
    "root": ROOTS,
}
DEFAULT_SMOOTHING_WINDOW: Final = 9  # savgol frames (service.core.smoothing)
# Pixels per image side: from one pixel to far beyond any video (16K is 15,360 wide); outside it the pixel
# normalisation's arithmetic is meaningless (1e-30 or 1e308 once gave NaN answers).
IMAGE_SIDE: Final = (1.0, 100_000.0)
# The track policy's frame counts and person names (``service.core.selection``): a bound far past any request's
# frames, and the track id's limit (``service.core.tracks.MAX_ID_CHARS``).
MAX_SELECTION_FRAMES: Final = 1_000_000
MAX_PERSON_CHARS: Final = 128
SELECTION_FIELDS: Final = ("min_track_frames", "max_gap_frames", "person")


def _choice(value: object, choices: tuple[str, ...], field: str, what: str) -> str:
    if isinstance(value, str) and value in choices:
        return value
    if value is None or value == "":
        raise InvalidInput(f"set the {what}: one of {', '.join(choices)}", field=field)
    raise InvalidInput(f"unknown {what} {value!r}; expected one of {', '.join(choices)}", field=field)


def parse_format(value: object, *, field: str = "format") -> str:
    """``value`` as a format name; ``InvalidInput`` when it is missing or unknown."""
    return _choice(value, tuple(FORMATS), field, "keypoint format")


def parse_normalization(value: object, *, field: str = "normalization") -> str | None:
    """``value`` as a normalization name, ``None`` (the default) when not given; ``InvalidInput`` if unknown."""
    return None if value is None else _choice(value, NORMALIZATIONS, field, "normalization")


def parse_mode(value: object, *, field: str = "mode") -> str:
    """``value`` as a stream mode, ``causal`` when not given; ``InvalidInput`` if unknown."""
    return "causal" if value is None else _choice(value, MODES, field, "stream mode")


def parse_policy(value: object, *, field: str = "config.policy") -> str:
    """A stream's frame policy: ``latest`` (None too) or ``all``."""
    return "latest" if value is None else _choice(value, POLICIES, field, "stream policy")


@dataclass(frozen=True)
class LiftOptions:
    """How to read a request's keypoints and what to answer (``FIELD_DOCS`` says what each field means).

    Construction checks nothing; ``check`` applies every rule. ``None`` means the default the field's doc names.
    """

    format: str
    image_size: tuple[float, float] | None = None
    normalization: str | None = None
    flip: bool = True
    rootrel: bool = False
    pixels: bool | None = None
    overlap: int | None = None
    min_track_frames: int | None = None
    max_gap_frames: int | None = None
    person: str | None = None
    smoothing: str | None = None
    smoothing_window: int | None = None
    smoothing_cutoff: float | None = None
    smoothing_beta: float | None = None
    fps: float | None = None
    subject_height_m: float | None = None
    root: str | None = None
    focal_length_px: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, prefix: str = "") -> LiftOptions:
        """Options from JSON-like values (REST bodies, keypoint files, keyword arguments): booleans must be
        booleans, integers integers (2.0 is 2), ``image_size`` two numbers. Raises ``InvalidInput`` naming the
        field for a wrong type, an unknown choice or an unknown key."""
        given = typed(data, LIFT_FIELDS, prefix)
        given["format"] = parse_format(given.get("format"), field=prefix + "format")
        given["normalization"] = parse_normalization(given.get("normalization"), field=prefix + "normalization")
        if given.get("smoothing") is not None:
            given["smoothing"] = _choice(given["smoothing"], SMOOTHINGS, prefix + "smoothing", "smoothing")
        if given.get("root") is not None:
            given["root"] = _choice(given["root"], ROOTS, prefix + "root", "root")
        return cls(**given)  # type: ignore[arg-type]  # each value was checked against its field's type

    def resolved_normalization(self) -> str:
        """The normalization in effect once defaults are applied."""
        if self.normalization is not None:
            return self.normalization
        return "pixel" if self.image_size is not None else "crop"

    def resolved_pixels(self) -> bool:
        """Whether the answer carries pixel coordinates."""
        return self.pixels if self.pixels is not None else self.resolved_normalization() == "pixel"

    def resolved_focal_px(self) -> float | None:
        """The focal length a root trajectory uses: ``focal_length_px``, else the image diagonal (see
        ``service.core.trajectory``); None without an image size."""
        if self.focal_length_px is not None:
            return self.focal_length_px
        return None if self.image_size is None else math.hypot(*self.image_size)

    def resolved_root(self) -> str:
        """Where the answer puts the pelvis: ``image`` (the official output), ``relative`` or ``trajectory``."""
        return self.root if self.root is not None else ("relative" if self.rootrel else "image")

    def check(self, *, window: int, prefix: str = "") -> None:
        """Every rule against a model of ``window`` frames; ``InvalidInput`` naming ``prefix + field``."""
        parse_format(self.format, field=prefix + "format")
        if self.image_size is not None:
            width, height = self.image_size
            if not all(IMAGE_SIDE[0] <= v <= IMAGE_SIDE[1] for v in (width, height)):  # NaN fails too
                raise InvalidInput(
                    f"image_size [width, height] must be between {IMAGE_SIDE[0]:g} and {IMAGE_SIDE[1]:g} pixels, "
                    f"got {[width, height]}",
                    field=prefix + "image_size",
                )
        parse_normalization(self.normalization, field=prefix + "normalization")
        mode = self.resolved_normalization()
        if mode == "pixel" and self.image_size is None:
            raise InvalidInput("pixel normalization needs image_size [width, height]", field=prefix + "image_size")
        if self.pixels and (self.image_size is None or mode != "pixel"):
            raise InvalidInput(
                "pixel output needs image_size and pixel normalization (the official --pixel mode)",
                field=prefix + "pixels",
            )
        if self.overlap is not None and not 0 <= self.overlap < window:
            raise InvalidInput(
                f"overlap must be between 0 and {window - 1} frames (window {window}), got {self.overlap}",
                field=prefix + "overlap",
            )
        self._check_selection(prefix)
        self._check_smoothing(prefix)
        self._check_root(prefix)

    def _check_root(self, prefix: str) -> None:
        """``root`` and ``focal_length_px`` (``service.core.trajectory`` places the root)."""
        if self.root is not None:
            _choice(self.root, ROOTS, prefix + "root", "root")
            if self.rootrel and self.root != "relative":
                raise InvalidInput(
                    f"rootrel: true means root: relative, which contradicts root: {self.root}; give one of them",
                    field=prefix + "root",
                )
        trajectory = self.resolved_root() == "trajectory"
        if trajectory and (self.image_size is None or self.resolved_normalization() != "pixel"):
            raise InvalidInput(
                "a root trajectory needs image_size and pixel normalization: the distance comes from the person's "
                "size in the image",
                field=prefix + "root",
            )
        focal = self.focal_length_px
        if focal is not None:
            if not FOCAL_PX[0] <= focal <= FOCAL_PX[1]:  # NaN fails too
                raise InvalidInput(
                    f"focal_length_px must be between {FOCAL_PX[0]:g} and {FOCAL_PX[1]:g} pixels, got {focal}",
                    field=prefix + "focal_length_px",
                )
            if not trajectory:
                raise InvalidInput(
                    "focal_length_px places the root trajectory: it needs root: trajectory (it cannot give metres "
                    "by itself; subject_height_m does)",
                    field=prefix + "focal_length_px",
                )

    def _check_smoothing(self, prefix: str) -> None:
        """The smoothing's choice and ranges (``service.core.smoothing`` applies it)."""
        if self.smoothing is not None:
            _choice(self.smoothing, SMOOTHINGS, prefix + "smoothing", "smoothing")
        window = self.smoothing_window
        if window is not None and not (5 <= window <= 99 and window % 2 == 1):
            raise InvalidInput(
                f"smoothing_window must be odd, 5 to 99 frames, got {window}", field=prefix + "smoothing_window"
            )
        for name, low, high in (
            ("smoothing_cutoff", 0.001, 1000.0),
            ("smoothing_beta", 0.0, 1000.0),
            ("fps", 1.0, 1000.0),
            ("subject_height_m", 0.5, 2.5),
        ):
            value = getattr(self, name)
            if value is not None and not low <= value <= high:  # NaN fails too
                raise InvalidInput(f"{name} must be between {low:g} and {high:g}, got {value}", field=prefix + name)

    def _check_selection(self, prefix: str) -> None:
        """The track policy's ranges (``service.core.selection`` applies it)."""
        if self.min_track_frames is not None and not 1 <= self.min_track_frames <= MAX_SELECTION_FRAMES:
            raise InvalidInput(
                f"min_track_frames must be between 1 and {MAX_SELECTION_FRAMES}, got {self.min_track_frames}",
                field=prefix + "min_track_frames",
            )
        if self.max_gap_frames is not None and not 0 <= self.max_gap_frames <= MAX_SELECTION_FRAMES:
            raise InvalidInput(
                f"max_gap_frames must be between 0 and {MAX_SELECTION_FRAMES}, got {self.max_gap_frames}",
                field=prefix + "max_gap_frames",
            )
        if self.person is not None and not 1 <= len(self.person) <= MAX_PERSON_CHARS:
            raise InvalidInput(
                f"person is all, longest, largest, most-central or a track id of 1 to {MAX_PERSON_CHARS} characters",
                field=prefix + "person",
            )

    def selects(self) -> bool:
        """Whether any track policy setting is given (a stream and a single sequence take none)."""
        return any(v is not None for v in (self.min_track_frames, self.max_gap_frames, self.person))


# JSON types of each field: "format" and "choice" take strings (checked in full by `check`), "size" two numbers.
LIFT_FIELDS: Final[dict[str, str]] = {
    "format": "str",
    "image_size": "size",
    "normalization": "str",
    "flip": "bool",
    "rootrel": "bool",
    "pixels": "bool",
    "overlap": "int",
    "min_track_frames": "int",
    "max_gap_frames": "int",
    "person": "str",
    "smoothing": "str",
    "smoothing_window": "int",
    "smoothing_cutoff": "number",
    "smoothing_beta": "number",
    "fps": "number",
    "subject_height_m": "number",
    "root": "str",
    "focal_length_px": "number",
}
assert set(LIFT_FIELDS) == {f.name for f in fields(LiftOptions)}
