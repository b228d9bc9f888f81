"""The ``motionlift`` command: the composition root. It names the commands and imports only the one asked for,
so ``motionlift lift`` works with just the client installed (``pip install 'motionlift[client]'``) and
``motionlift --help`` imports nothing heavy.

Each command lives in the package it belongs to, as a module with ``add_arguments(parser)`` and
``run(args) -> int`` (exit code): 0 done, 2 bad arguments or input, 1 a failure the command reports.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import NamedTuple


class Command(NamedTuple):
    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "serve": Command("service.api.command", "serve REST and gRPC on the model (settings: flags or MOTIONLIFT_*)"),
    "keys": Command("service.api.keys", "API keys of `serve --api-keys`: create NAME, revoke NAME, list"),
    "export": Command("service.model.command", "write a DSTformer as TorchScript, with its Triton config"),
    "pull": Command("service.model.zoo.command", "official weights by name: download, check, export, register"),
    "lift": Command("service.client.command", "lift a keypoint file (ours, MMPose/RTMPose, AlphaPose) over REST/gRPC"),
    "render": Command("service.client.render_command", "lift a keypoint file and draw 2D beside 3D into an MP4/GIF"),
    "bench": Command("service.bench.command", "benchmarks: model, load, stream, soak, overload, bigbody, ..."),
    "plan": Command("service.bench.plan", "CPU cores, GPUs and gateways a workload needs, and what they cost"),
    "train": Command("service.training.train_command", "train a lifter on synthetic views of motion capture"),
    "evaluate": Command("service.training.evaluate_command", "held-out MPJPE / P-MPJPE / acceleration error"),
}


def _requested(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option), if it is one of ours."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command is listed, only the requested one gets its arguments."""
    parser = argparse.ArgumentParser(prog="motionlift", description="Serve MotionBERT's DSTformer: 2D -> 3D.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    requested = _requested(argv)
    for name, command in COMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.help)
        if name == requested:
            module = importlib.import_module(command.module)
            module.add_arguments(child)
            child.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words).parse_args(words)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
