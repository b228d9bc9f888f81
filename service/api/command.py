"""``motionlift serve``: one flag per ``Settings`` field (derived, with the field's description as help), each
overriding the ``MOTIONLIFT_<NAME>`` environment variable of that field; then the server runs until SIGTERM."""

from __future__ import annotations

import argparse
import ipaddress
import os
import ssl
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from service.config import Settings, Tracing
from service.core import trace
from service.telemetry import logs

ON = ("on", "true", "yes", "1")
OFF = ("off", "false", "no", "0")


def _switch(text: str) -> bool:
    word = text.strip().lower()
    if word not in ON + OFF:
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return word in ON


def _flag_type(annotation: Any) -> tuple[Callable[[str], Any], tuple[str, ...] | None]:
    """How a flag's text becomes the field's value, and its choices (for ``Literal`` fields)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None: the flag gives an X
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Literal:
        return str, tuple(typing.get_args(annotation))
    if annotation is bool:
        return _switch, None
    if annotation in (int, float, Path):
        return annotation, None
    return str, None  # str, and list[str] given comma-separated (Settings splits it)


def add_arguments(serve: argparse.ArgumentParser) -> None:
    """A flag ``--<field-name>`` for every ``Settings`` field; unset flags are ``None`` (environment, default)."""
    for name, info in Settings.model_fields.items():
        kind, choices = _flag_type(info.annotation)
        env = f"MOTIONLIFT_{name.upper()}"
        text = f"{info.description} [env {env}]"
        metavar = "on|off" if kind is _switch else None
        switch: dict[str, Any] = {"nargs": "?", "const": True} if kind is _switch else {}  # `--insecure` alone: on
        serve.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            choices=choices,
            metavar=metavar,
            default=None,
            help=text,
            **switch,
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment first, then every flag that was given on the command line; a ``model`` that names a model
    pulled by ``motionlift pull`` becomes its file. Raises ``ValueError`` for a name known but not pulled yet."""
    overrides = {name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None}
    return named_model(Settings(**overrides), os.environ)


def named_model(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """``settings`` with ``model`` resolved: a file stays as it is, a pulled name becomes its exported file
    (``service/model/zoo/registry.py``)."""
    from service.model.zoo.catalogue import CATALOGUE
    from service.model.zoo.registry import Cache, cache_root, resolve_model

    cache = Cache(cache_root(settings.cache_dir, environ))
    model = resolve_model(settings.model, cache, CATALOGUE)
    return settings if model == settings.model else settings.model_copy(update={"model": model})


def run(args: argparse.Namespace) -> int:
    from service.backends.torchscript.heap import keep_freed_memory
    from service.backends.torchscript.threads import wait_passively

    keep_freed_memory()  # before any thread starts (service/backends/torchscript/heap.py says why)
    wait_passively()  # before torch is imported (service/backends/torchscript/threads.py says why)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:  # a pydantic ValidationError too: say it as the other mistakes are said
        print(f"motionlift serve: {exc}", file=sys.stderr)
        return 2
    try:
        tracer = make_tracer(Tracing())
    except ValidationError as exc:
        problems = "; ".join(f"OTEL_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
        print(f"motionlift serve: {problems}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"motionlift serve: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format, tracer.ids)
    problem = exposure(settings) or _preflight(settings)
    if problem:
        print(f"motionlift serve: {problem}", file=sys.stderr)
        return 2
    from service.api.server import run as serve

    serve(settings, tracer)
    return 0


def make_tracer(tracing: Tracing) -> trace.Tracer:
    """The tracer the ``OTEL_*`` variables ask for (``Tracing``): ``OFF`` unless they name an exporter. Raises
    ``ImportError`` (with the install command) when they do and OpenTelemetry is not installed."""
    if not tracing.exporters():
        return trace.OFF
    try:
        from service.telemetry.provider import make_tracer as otel
    except ImportError as exc:
        raise ImportError(
            f"tracing is configured (OTEL_* variables) but OpenTelemetry is not installed ({exc.name} missing): "
            "pip install 'motionlift[tracing]', or unset OTEL_TRACES_EXPORTER and the OTLP endpoint"
        ) from exc
    return otel(tracing)


def exposure(settings: Settings) -> str | None:
    """Why ``settings`` would expose the service to anyone who can connect, or a TLS or keys setting that cannot
    work, in one line telling how to fix it; None when it may serve (README "Security")."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        return "--tls-cert and --tls-key go together"
    if settings.tls_client_ca is not None and settings.tls_cert is None:
        return "--tls-client-ca (client certificates) needs --tls-cert and --tls-key"
    if settings.api_keys is not None and not settings.api_keys.is_file():
        return (
            f"no keys file at {settings.api_keys}: make one with "
            f"`motionlift keys --api-keys {settings.api_keys} create NAME`"
        )
    if settings.tls_cert is not None:
        from service.api.tls import certificates

        tls = certificates(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        try:
            assert tls is not None
            tls.check()
        except (OSError, ssl.SSLError) as exc:
            return f"the TLS files cannot be used: {exc}"
    if loopback(settings.host) or settings.insecure:
        return None
    if settings.api_keys is None and settings.tls_client_ca is None:
        return (
            f"refusing to serve on {settings.host} without API keys or client certificates: add --api-keys FILE "
            "(`motionlift keys create NAME`) or --tls-client-ca CA, or --insecure to let anyone who can connect in"
        )
    return None


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _preflight(settings: Settings) -> str | None:
    """Why the backend cannot start (the in-process model's file or device; a malformed Triton URL), in one line
    before the server starts rather than in a startup traceback; None when it can."""
    if settings.backend == "triton":
        from service.backends.triton.discovery import Discovery

        try:
            Discovery(settings.triton_urls)  # parses the URLs, no I/O
        except ValueError as exc:
            return str(exc)
        return None
    from service.backends.torchscript.backend import startup_problem

    return startup_problem(settings.model, settings.device)
