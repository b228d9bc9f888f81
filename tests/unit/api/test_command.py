"""Settings: MOTIONLIFT_* environment variables, overridden by `motionlift serve` flags derived from the fields."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from service.api.command import add_arguments, settings_from_args
from service.cli import build_parser
from service.config import Settings


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motionlift serve")
    add_arguments(parser)
    return parser


def parse(*words: str) -> argparse.Namespace:
    return serve_parser().parse_args(words)


def test_defaults_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = settings_from_args(parse())
    assert (defaults.host, defaults.port, defaults.grpc_port) == ("127.0.0.1", 8000, 50051)
    assert defaults.model == Path("model_repository/dstformer/1/model.pt")
    assert (defaults.max_frames, defaults.max_body_bytes, defaults.timeout_s) == (10_000, 64 * 1024 * 1024, 30.0)
    assert defaults.max_batch_frames is None  # from the model's width at start

    monkeypatch.setenv("MOTIONLIFT_MAX_BATCH_SIZE", "3")
    monkeypatch.setenv("MOTIONLIFT_PORT", "9000")
    monkeypatch.setenv("MOTIONLIFT_MAX_QUEUE_DELAY_MS", "7.5")
    from_env = settings_from_args(parse())
    assert (from_env.max_batch_size, from_env.port, from_env.max_queue_delay_ms) == (3, 9000, 7.5)

    flags = settings_from_args(
        parse("--port", "9100", "--max-batch-size", "5", "--max-batch-frames", "120", "--timeout-s", "2")
    )
    assert (flags.port, flags.max_batch_size, flags.max_batch_frames, flags.timeout_s) == (9100, 5, 120, 2.0)
    assert flags.max_queue_delay_ms == 7.5  # the environment still applies where no flag is given


def test_every_setting_has_its_flag_and_help() -> None:
    flags = {a.dest: a for a in serve_parser()._actions if a.dest != "help"}
    assert set(flags) == set(Settings.model_fields)
    for name, action in flags.items():
        assert action.option_strings == ["--" + name.replace("_", "-")]
        assert action.help == f"{Settings.model_fields[name].description} [env MOTIONLIFT_{name.upper()}]"
    assert flags["backend"].choices == ("torchscript", "triton")
    assert flags["precision"].choices == ("auto", "fp32", "bf16", "fp16")


def test_flag_types_follow_the_fields() -> None:
    s = settings_from_args(
        parse("--cuda-graphs", "on", "--triton-urls", "a:1, b:2", "--model", "m.pt", "--max-queue-delay-ms", "0.5")
    )
    assert (s.cuda_graphs, s.triton_urls, s.model, s.max_queue_delay_ms) == (True, ["a:1", "b:2"], Path("m.pt"), 0.5)
    assert settings_from_args(parse("--cuda-graphs", "off")).cuda_graphs is False
    with pytest.raises(SystemExit):
        parse("--cuda-graphs", "maybe")
    with pytest.raises(SystemExit):
        parse("--backend", "onnx")


def test_invalid_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTIONLIFT_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="max_batch_size"):
        settings_from_args(parse())


def test_the_command_line_reaches_serve_with_its_flags() -> None:
    args = build_parser(["serve", "--port", "0"]).parse_args(["serve", "--port", "0"])
    assert args.command == "serve" and args.port == 0
    assert args.run.__module__ == "service.api.command"


def test_a_malformed_triton_url_stops_serve_before_it_starts(capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli import main

    url = "dns://8.8.8.8/triton:8001"
    assert main(["serve", "--backend", "triton", "--triton-urls", f"a:8001,{url}", "--port", "0"]) == 2
    assert capsys.readouterr().err == (
        f"motionlift serve: Triton URL {url!r}: a DNS server in the URL is not supported (the system's resolver is "
        "used): write dns:///NAME:PORT\n"
    )
    resolve = settings_from_args(parse("--triton-urls", "dns:///t:8001", "--triton-resolve-s", "0.5"))
    assert (resolve.triton_urls, resolve.triton_resolve_s) == (["dns:///t:8001"], 0.5)
