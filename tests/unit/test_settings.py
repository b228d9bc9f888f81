"""Settings: MOTIONLIFT_* environment variables, overridden by `motionlift serve` flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import build_parser, settings_from_args


def test_defaults_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    parse = build_parser().parse_args
    defaults = settings_from_args(parse(["serve"]))
    assert (defaults.host, defaults.port, defaults.grpc_port) == ("127.0.0.1", 8000, 50051)
    assert defaults.model == Path("model_repository/dstformer/1/model.pt")
    assert (defaults.max_frames, defaults.max_body_bytes, defaults.timeout_s) == (10_000, 64 * 1024 * 1024, 30.0)
    assert defaults.max_batch_frames is None  # from the model's width at start

    monkeypatch.setenv("MOTIONLIFT_MAX_BATCH_SIZE", "3")
    monkeypatch.setenv("MOTIONLIFT_PORT", "9000")
    monkeypatch.setenv("MOTIONLIFT_MAX_QUEUE_DELAY_MS", "7.5")
    from_env = settings_from_args(parse(["serve"]))
    assert (from_env.max_batch_size, from_env.port, from_env.max_queue_delay_ms) == (3, 9000, 7.5)

    flags = settings_from_args(
        parse(["serve", "--port", "9100", "--max-batch-size", "5", "--max-batch-frames", "120", "--timeout-s", "2"])
    )
    assert (flags.port, flags.max_batch_size, flags.max_batch_frames, flags.timeout_s) == (9100, 5, 120, 2.0)
    assert flags.max_queue_delay_ms == 7.5  # the environment still applies where no flag is given


def test_invalid_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTIONLIFT_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="max_batch_size"):
        settings_from_args(build_parser().parse_args(["serve"]))
