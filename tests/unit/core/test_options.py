"""The one options type: its rules and messages, and every wire form derived from it or checked against it here
(the REST schema, the proto messages, the client's encoding, the CLI's flags, the latency types)."""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields
from typing import Any

import numpy as np
import pytest

from service.api.pb.motionlift.v1 import lift_pb2 as pb
from service.api.rest.openapi import request_schema
from service.client import wire
from service.client.command import add_option_flags
from service.client.types import lift_call
from service.config import Settings
from service.core.fields import FIELD_DOCS
from service.core.frames import FrameLatency
from service.core.options import CHOICES, FORMATS, LIFT_FIELDS, MODES, NORMALIZATIONS, POLICIES, LiftOptions
from service.core.results import Timing
from service.core.stream_options import SEQUENCE_FIELDS, STREAM_FIELDS, StreamOptions
from service.errors import InvalidInput


def refused(call: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "format", "set the keypoint format: one of h36m, coco, halpe26"),
        ({"format": "body25"}, "format", "unknown keypoint format 'body25'; expected one of h36m, coco, halpe26"),
        ({"format": 17}, "format", "must be a string, got 17"),
        ({"format": "coco", "flip": 1}, "flip", "must be true or false, got 1"),
        ({"format": "coco", "overlap": True}, "overlap", "must be an integer, got True"),
        ({"format": "coco", "overlap": 2.5}, "overlap", "must be an integer, got 2.5"),
        (
            {"format": "coco", "image_size": [1, 2, 3]},
            "image_size",
            "must be [width, height], two numbers, got [1, 2, 3]",
        ),
        (
            {"format": "coco", "image_size": [10**400, 2]},
            "image_size",
            "must be [width, height], two numbers, got [1000",
        ),
        ({"format": "coco", "normalization": "box"}, "normalization", "unknown normalization 'box'; expected one of"),
        ({"format": "coco", "window": 8}, "window", "unknown field; expected one of format, image_size, normalization"),
    ],
)
def test_from_mapping_names_the_field_and_the_problem(data: dict[str, Any], field: str, message: str) -> None:
    error = refused(lambda: LiftOptions.from_mapping(data))
    assert error.field == field and error.message.startswith(message), error.message


def test_from_mapping_takes_json_and_numpy_values() -> None:
    options = LiftOptions.from_mapping(
        {"format": "coco", "image_size": (np.float32(1920), 1080), "flip": np.bool_(False), "overlap": np.int64(3)}
    )
    assert options == LiftOptions("coco", (1920.0, 1080.0), None, False, False, None, 3)
    assert type(options.overlap) is int and type(options.flip) is bool
    assert LiftOptions.from_mapping({"format": "h36m", "pixels": None}) == LiftOptions("h36m")  # None = default


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (LiftOptions("coco", image_size=(0.5, 1.0)), "image_size", "image_size [width, height] must be between 1 and"),
        (LiftOptions("coco", image_size=(float("nan"), 1.0)), "image_size", "image_size [width, height] must be"),
        (LiftOptions("coco", image_size=(1e308, 1.0)), "image_size", "image_size [width, height] must be between"),
        (LiftOptions("coco", normalization="pixel"), "image_size", "pixel normalization needs image_size"),
        (LiftOptions("coco", pixels=True), "pixels", "pixel output needs image_size and pixel normalization"),
        (LiftOptions("coco", overlap=27), "overlap", "overlap must be between 0 and 26 frames (window 27), got 27"),
        (LiftOptions("coco", overlap=-1), "overlap", "overlap must be between 0 and 26 frames"),
        (LiftOptions("openpose"), "format", "unknown keypoint format 'openpose'"),
        (LiftOptions("coco", root="trajectory"), "root", "a root trajectory needs image_size and pixel normalization"),
        (
            LiftOptions("coco", (640.0, 480.0), "none", root="trajectory"),
            "root",
            "a root trajectory needs image_size and pixel normalization",
        ),
        (LiftOptions("coco", (640.0, 480.0), root="centre"), "root", "unknown root 'centre'; expected one of image,"),
        (
            LiftOptions("coco", (640.0, 480.0), rootrel=True, root="trajectory"),
            "root",
            "rootrel: true means root: relative, which contradicts root: trajectory",
        ),
        (
            LiftOptions("coco", (640.0, 480.0), focal_length_px=1000.0),
            "focal_length_px",
            "focal_length_px places the root trajectory: it needs root: trajectory",
        ),
        (
            LiftOptions("coco", (640.0, 480.0), root="trajectory", focal_length_px=0.5),
            "focal_length_px",
            "focal_length_px must be between 1 and 1e+06 pixels, got 0.5",
        ),
    ],
)
def test_check_against_the_model(options: LiftOptions, field: str, message: str) -> None:
    error = refused(lambda: options.check(window=27))
    assert error.field == field and error.message.startswith(message), error.message
    assert refused(lambda: options.check(window=27, prefix="config.")).field == "config." + field


def test_root_resolves_from_rootrel_and_root() -> None:
    assert LiftOptions("coco").resolved_root() == "image"
    assert LiftOptions("coco", rootrel=True).resolved_root() == "relative"
    assert LiftOptions("coco", rootrel=True, root="relative").resolved_root() == "relative"
    assert LiftOptions("coco", root="trajectory").resolved_root() == "trajectory"
    LiftOptions("coco", (640.0, 480.0), root="trajectory", focal_length_px=900.0).check(window=27)  # accepted


def test_defaults_resolve() -> None:
    assert LiftOptions("coco").resolved_normalization() == "crop" and not LiftOptions("coco").resolved_pixels()
    sized = LiftOptions("coco", image_size=(640.0, 480.0))
    assert sized.resolved_normalization() == "pixel" and sized.resolved_pixels()
    assert not LiftOptions("coco", image_size=(640.0, 480.0), pixels=False).resolved_pixels()


def test_stream_options_from_the_flat_wire_form() -> None:
    options = StreamOptions.from_mapping(
        {"format": "coco", "image_size": [640, 480], "mode": "lookahead", "lookahead": 4, "hop": 2}
    )
    assert options == StreamOptions(LiftOptions("coco", (640.0, 480.0)), hop=2, mode="lookahead", lookahead=4)
    plan = options.resolve(model_window=27)
    assert (plan.window, plan.hop, plan.mode, plan.lookahead, plan.expiry_s) == (27, 2, "lookahead", 4, 10.0)
    overlap = refused(lambda: StreamOptions.from_mapping({"format": "coco", "overlap": 3}))
    assert (overlap.field, overlap.message) == (
        "config.overlap",
        "a stream has no overlap: each frame is answered from one window",
    )


def test_every_field_is_documented_and_typed_once() -> None:
    assert [f.name for f in fields(LiftOptions)] == list(LIFT_FIELDS)
    assert [f.name for f in fields(StreamOptions) if f.name != "lift"] == list(STREAM_FIELDS)
    assert set(FIELD_DOCS) == set(LIFT_FIELDS) | set(STREAM_FIELDS)
    assert {"format": tuple(FORMATS), "normalization": NORMALIZATIONS, "mode": MODES, "policy": POLICIES,
            "smoothing": ("none", "savgol", "one-euro"),
            "root": ("image", "relative", "trajectory")} == CHOICES  # fmt: skip


def test_the_rest_schema_is_derived_from_the_options() -> None:
    schema = request_schema(Settings(), window=27)["LiftRequest"]
    properties = schema["properties"]
    assert list(properties) == ["keypoints", "tracks", *LIFT_FIELDS]
    assert schema["required"] == ["format"]
    for name in LIFT_FIELDS:
        assert properties[name]["description"].startswith(FIELD_DOCS[name])
    assert properties["format"]["enum"] == list(FORMATS)
    normalization = [t for t in properties["normalization"]["anyOf"] if "enum" in t]
    assert normalization[0]["enum"] == list(NORMALIZATIONS)
    assert properties["flip"]["default"] is True and properties["overlap"]["default"] is None


def _proto_fields(message: Any) -> list[str]:
    return [f.name for f in message.DESCRIPTOR.fields]


def test_the_proto_messages_carry_the_same_fields() -> None:
    assert _proto_fields(pb.LiftRequest) == ["tracks", *LIFT_FIELDS]
    stream = [name for name in LIFT_FIELDS if name not in ("overlap", *SEQUENCE_FIELDS)] + list(STREAM_FIELDS)
    assert sorted(_proto_fields(pb.StreamConfig)) == sorted(stream)
    assert _proto_fields(pb.Latency) == [f.name for f in fields(Timing)]
    assert _proto_fields(pb.StreamLatency) == [f.name for f in fields(FrameLatency)]
    for enum, prefix, names in (
        (pb.Format, "FORMAT_", FORMATS),
        (pb.Normalization, "NORMALIZATION_", NORMALIZATIONS),
        (pb.StreamMode, "STREAM_MODE_", MODES),
    ):
        names_in_proto = [v.name.removeprefix(prefix).lower() for v in enum.DESCRIPTOR.values]
        assert names_in_proto == ["unspecified", *names]


def test_the_client_encodes_every_option_for_both_wires() -> None:
    options = LiftOptions("halpe26", (640.0, 480.0), "pixel", False, True, False, 5)
    call = lift_call(np.zeros((3, 26, 3), np.float32), options=options)
    request = wire.lift_request(call)
    assert (request.format, request.normalization) == (pb.FORMAT_HALPE26, pb.NORMALIZATION_PIXEL)
    assert (request.image_size.width, request.image_size.height) == (640.0, 480.0)
    assert (request.flip, request.rootrel, request.pixels, request.overlap) == (False, True, False, 5)
    body = wire.options_json(options)
    assert body == {"format": "halpe26", "image_size": [640.0, 480.0], "normalization": "pixel", "flip": False,
                    "rootrel": True, "pixels": False, "overlap": 5}  # fmt: skip
    assert LiftOptions.from_mapping(body) == options  # the REST form reads back as the same options
    unset = wire.lift_request(lift_call(np.zeros((3, 17, 3), np.float32), options=LiftOptions("coco")))
    assert not unset.HasField("image_size") and not unset.HasField("pixels") and not unset.HasField("overlap")


def test_the_lift_command_has_one_flag_per_option() -> None:
    parser = argparse.ArgumentParser()
    add_option_flags(parser)
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert list(flags) == list(LIFT_FIELDS)
    assert all(flags[name].help == FIELD_DOCS[name] for name in LIFT_FIELDS)
    args = parser.parse_args(["--no-flip", "--image-size", "640", "480", "--format", "coco", "--overlap", "4"])
    given = {name: getattr(args, name) for name in LIFT_FIELDS if getattr(args, name) is not None}
    assert LiftOptions.from_mapping(given) == LiftOptions("coco", (640.0, 480.0), flip=False, overlap=4)
    assert typing.get_type_hints(LiftOptions)["image_size"] == tuple[float, float] | None
