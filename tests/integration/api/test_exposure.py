"""Safe defaults of ``motionlift serve`` and the switches around them: a non-loopback address without keys or client
certificates is refused with how to fix it; no server banner; /docs can be turned off; CORS only for the origins
allowed; /metrics on a port of its own without a key."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.api.command import exposure
from service.cli import main
from service.config import Settings
from tests.servers import serve_app


def test_a_non_loopback_address_needs_keys_or_client_certificates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.json"
    assert main(["keys", "--api-keys", str(keys), "create", "ops"]) == 0
    refusal = (
        "refusing to serve on 0.0.0.0 without API keys or client certificates: add --api-keys FILE "
        "(`motionlift keys create NAME`) or --tls-client-ca CA, or --insecure to let anyone who can connect in"
    )
    assert exposure(Settings(host="0.0.0.0")) == refusal
    assert exposure(Settings(host="192.0.2.7")) == refusal.replace("0.0.0.0", "192.0.2.7")
    for fine in (Settings(host="127.0.0.1"), Settings(host="localhost"), Settings(host="::1"),
                 Settings(host="0.0.0.0", insecure=True), Settings(host="0.0.0.0", api_keys=keys)):  # fmt: skip
        assert exposure(fine) is None, fine.host
    assert exposure(Settings(tls_cert=keys)) == "--tls-cert and --tls-key go together"
    assert (
        exposure(Settings(tls_client_ca=keys)) == "--tls-client-ca (client certificates) needs --tls-cert and --tls-key"
    )
    missing = tmp_path / "none.json"
    assert exposure(Settings(api_keys=missing)) == (
        f"no keys file at {missing}: make one with `motionlift keys --api-keys {missing} create NAME`"
    )
    assert exposure(Settings(tls_cert=keys, tls_key=keys)).startswith("the TLS files cannot be used: ")  # type: ignore[union-attr]
    capsys.readouterr()
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2  # refused before anything starts
    assert capsys.readouterr().err == f"motionlift serve: {refusal}\n"


def test_banner_docs_cors_and_the_metrics_port(tiny_model: Path) -> None:
    origin = "https://viewer.example.org"
    settings = Settings(model=tiny_model, docs=False, cors_origins=[origin], metrics_port=0)
    with serve_app(settings) as (url, app):
        health = httpx.get(f"{url}/healthz")
        assert "server" not in health.headers
        assert httpx.get(f"{url}/docs").status_code == 404
        assert httpx.get(f"{url}/openapi.json").status_code == 404
        asked = {"origin": origin, "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization,content-type"}  # fmt: skip
        allowed = httpx.options(f"{url}/lift", headers=asked)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == origin
        stranger = httpx.options(f"{url}/lift", headers={**asked, "origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers
        metrics = httpx.get(f"http://127.0.0.1:{app.state.metrics_port.port}/metrics")
        assert metrics.status_code == 200 and "motionlift_requests_total" in metrics.text
    with serve_app(Settings(model=tiny_model)) as (url, _):
        assert httpx.get(f"{url}/docs").status_code == 200
        plain = httpx.options(f"{url}/lift", headers={"origin": origin, "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in plain.headers  # CORS is off unless origins are given
