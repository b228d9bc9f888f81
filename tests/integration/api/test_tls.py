"""TLS and mutual TLS through the real service, with a CA and certificates made by the test (trustme): httpx and a
secure gRPC channel get answers; a plaintext client, a client without a certificate, with one from another CA or
with an expired one are refused; certificate files replaced on disk are served without a restart."""

from __future__ import annotations

import datetime
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import trustme

from service.client import MotionLiftClient, Security
from service.config import Settings
from service.errors import Unavailable
from tests.data import walk
from tests.servers import serve_app, until

BODY = {"keypoints": walk(27), "format": "coco", "image_size": [1920, 1080]}


def pem(folder: Path, name: str, blob: trustme.Blob) -> Path:
    path = folder / name
    blob.write_to_path(path)
    return path


def server_files(folder: Path, ca: trustme.CA) -> tuple[Path, Path]:
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert = folder / "server.pem"
    for n, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(cert, append=n > 0)
    return cert, pem(folder, "server.key", leaf.private_key_pem)


def client_context(ca_file: Path, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        cert.configure_cert(context)
    return context


def lift(url: str, context: ssl.SSLContext) -> int:
    """A fresh connection's answer to POST /lift (a handshake failure raises httpx.HTTPError)."""
    with httpx.Client(verify=context, timeout=30) as client:
        return client.post(f"{url}/lift", json=BODY).status_code


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(tiny_model: Path, tmp_path: Path, ca: trustme.CA) -> Iterator[tuple[str, str, Path]]:
    cert, key = server_files(tmp_path, ca)
    with serve_app(Settings(model=tiny_model, tls_cert=cert, tls_key=key)) as (url, app):
        yield url, f"127.0.0.1:{app.state.grpc.port}", pem(tmp_path, "ca.pem", ca.cert_pem)


def test_tls_answers_over_both_protocols_and_refuses_plaintext(tls_server: tuple[str, str, Path]) -> None:
    url, target, ca_file = tls_server
    assert url.startswith("https://")
    assert lift(url, client_context(ca_file)) == 200
    with pytest.raises(httpx.HTTPError):  # plaintext HTTP on the TLS port
        httpx.post(url.replace("https://", "http://") + "/lift", json=BODY, timeout=10)
    with pytest.raises(httpx.HTTPError):  # a client that does not trust the service's CA
        lift(url, client_context(pem(ca_file.parent, "other.pem", trustme.CA().cert_pem)))
    with MotionLiftClient(grpc=target, tls=Security(ca=ca_file)) as client:
        assert client.lift(walk(27), format="coco", image_size=(1920, 1080)).joints3d.shape == (27, 17, 3)
    with MotionLiftClient(url, tls=Security(ca=ca_file)) as client:
        assert client.lift(walk(27), format="coco", image_size=(1920, 1080)).joints3d.shape == (27, 17, 3)
    with MotionLiftClient(grpc=target, timeout_s=5) as client, pytest.raises(Unavailable):  # plaintext gRPC
        client.lift(walk(27), format="coco", image_size=(1920, 1080))


def test_mutual_tls_takes_only_valid_certificates_of_its_client_ca(tiny_model: Path, tmp_path: Path) -> None:
    server_ca, client_ca, stranger_ca = trustme.CA(), trustme.CA(), trustme.CA()
    cert, key = server_files(tmp_path, server_ca)
    ca_file = pem(tmp_path, "ca.pem", server_ca.cert_pem)
    settings = Settings(model=tiny_model, tls_cert=cert, tls_key=key, tls_client_ca=pem(tmp_path, "clients.pem",
                        client_ca.cert_pem))  # fmt: skip
    good = client_ca.issue_cert("alice@example.org")
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    expired = client_ca.issue_cert("bob@example.org", not_after=yesterday)
    foreign = stranger_ca.issue_cert("mallory@example.org")
    with serve_app(settings) as (url, app):
        assert lift(url, client_context(ca_file, good)) == 200
        for refused in (None, expired, foreign):
            with pytest.raises(httpx.HTTPError):
                lift(url, client_context(ca_file, refused))
        target = f"127.0.0.1:{app.state.grpc.port}"
        good_key = pem(tmp_path, "alice.key", good.private_key_pem)
        good_cert = pem(tmp_path, "alice.pem", good.cert_chain_pems[0])
        with MotionLiftClient(grpc=target, tls=Security(ca=ca_file, cert=good_cert, key=good_key)) as client:
            assert client.lift(walk(27), format="coco", image_size=(1920, 1080)).joints3d.shape == (27, 17, 3)
        foreign_key = pem(tmp_path, "mallory.key", foreign.private_key_pem)
        foreign_cert = pem(tmp_path, "mallory.pem", foreign.cert_chain_pems[0])
        for security in (Security(ca=ca_file), Security(ca=ca_file, cert=foreign_cert, key=foreign_key)):
            with MotionLiftClient(grpc=target, tls=security, timeout_s=5) as client, pytest.raises(Unavailable):
                client.lift(walk(27), format="coco", image_size=(1920, 1080))


def test_replaced_certificates_are_served_without_a_restart(tls_server: tuple[str, str, Path], tmp_path: Path) -> None:
    url, target, old_ca = tls_server
    new_ca = trustme.CA()
    new_ca_file = pem(tmp_path, "new-ca.pem", new_ca.cert_pem)
    server_files(tmp_path, new_ca)  # the same paths the service reads: server.pem, server.key

    def answers_with_the_new_certificate() -> bool:
        try:
            return lift(url, client_context(new_ca_file)) == 200
        except httpx.HTTPError:
            return False

    until(answers_with_the_new_certificate, "REST to serve the new certificate", seconds=15)
    with pytest.raises(httpx.HTTPError):
        lift(url, client_context(old_ca))

    def grpc_with_the_new_certificate() -> bool:
        credentials = grpc.ssl_channel_credentials(new_ca_file.read_bytes())
        with grpc.secure_channel(target, credentials) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=5)
            except grpc.FutureTimeoutError:
                time.sleep(0.1)
                return False
        return True

    until(grpc_with_the_new_certificate, "gRPC to serve the new certificate", seconds=15)
