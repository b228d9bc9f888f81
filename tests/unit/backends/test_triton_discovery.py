"""Discovery of Triton servers with a resolver the test controls (never real DNS): URLs parse or are refused with
a message naming them; DNS names re-resolve into joins and leaves; a resolver that fails or hangs keeps the last
good answer and is logged once per failure; the pool picks only ready servers and closes leavers when idle."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from service.backends.triton.discovery import DEFAULT_PORT, Discovery, Target, system_resolver
from service.backends.triton.pool import Pool
from tests.dns import Records

NAME = "triton-headless.motionlift.svc"
SERVER = "a DNS server in the URL is not supported (the system's resolver is used): write dns:///NAME:PORT"
URL = f"dns:///{NAME}:8001"
LOGGER = "service.backends.triton.discovery"


def records(*addresses: str) -> Records:
    return Records({NAME: list(addresses)})


@pytest.mark.parametrize(
    ("text", "host", "port", "dns"),
    [
        ("10.0.0.5:8001", "10.0.0.5:8001", 0, False),  # static: handed to gRPC as it is
        ("dns:///triton:9001", "triton", 9001, True),
        ("dns:triton:9001", "triton", 9001, True),  # gRPC's form without an authority
        ("dns:///triton", "triton", DEFAULT_PORT, True),
        ("dns:///[fd00::5]:8001", "fd00::5", 8001, True),
        ("dns:///[fd00::5]", "fd00::5", DEFAULT_PORT, True),
    ],
)
def test_urls_parse(text: str, host: str, port: int, dns: bool) -> None:
    assert Target.parse(text) == Target(text, host, port, dns)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dns://8.8.8.8/triton:8001", SERVER),
        ("dns://triton:8001", SERVER),
        ("dns:///:8001", "expected dns:///NAME:PORT"),
        ("dns:///[fd00::5", "expected dns:///NAME:PORT"),
        ("dns:///[fd00::5]8001", "expected dns:///NAME:PORT"),
        ("dns:///triton:http", "the port must be a number from 1 to 65535"),
        ("dns:///triton:0", "the port must be a number from 1 to 65535"),
        ("dns:///triton:65536", "the port must be a number from 1 to 65535"),
    ],
)
def test_malformed_urls_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Discovery([text])
    assert str(raised.value) == f"Triton URL {text!r}: {message}"


async def test_static_urls_are_not_resolved_and_keep_their_order() -> None:
    dns = records("10.0.0.9")
    discovery = Discovery(["b:8001", URL, "a:8001", "10.0.0.9:8001"], dns)
    assert discovery.dynamic and not Discovery(["b:8001"], dns).dynamic
    # The name's address that a static URL already names is listed once.
    assert await discovery.servers() == ["b:8001", "10.0.0.9:8001", "a:8001"]
    assert dns.asked == [NAME]
    assert await Discovery(["b:8001"], dns).servers() == ["b:8001"] and dns.asked == [NAME]


async def test_new_records_join_and_removed_ones_leave_on_the_next_resolution() -> None:
    dns = records("10.0.0.1")
    discovery = Discovery([URL], dns)
    assert await discovery.servers() == ["10.0.0.1:8001"]
    dns.names[NAME] = ["10.0.0.2", "10.0.0.1", "10.0.0.2"]  # a replica joined (answers repeat and reorder)
    assert await discovery.servers() == ["10.0.0.1:8001", "10.0.0.2:8001"]
    dns.names[NAME] = ["10.0.0.2"]
    assert await discovery.servers() == ["10.0.0.2:8001"]
    dns.names[NAME] = ["fd00::7"]
    assert await discovery.servers() == ["[fd00::7]:8001"]
    dns.names[NAME] = []  # an empty answer is an answer: every replica is gone
    assert await discovery.servers() == []


async def test_a_failing_resolver_keeps_the_last_good_answer_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dns = records("10.0.0.1", "10.0.0.2")
    discovery = Discovery([URL, "static:8001"], dns)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert await discovery.servers() == ["10.0.0.1:8001", "10.0.0.2:8001", "static:8001"]
        del dns.names[NAME]  # NXDOMAIN
        for _ in range(3):
            assert await discovery.servers() == ["10.0.0.1:8001", "10.0.0.2:8001", "static:8001"]
        assert discovery.describe() == (
            f"{URL} (10.0.0.1:8001, 10.0.0.2:8001: [Errno {socket.EAI_NONAME}] Name or service not known), static:8001"
        )
        dns.error = RuntimeError("resolver broke")  # whatever a resolver raises
        assert await discovery.servers() == ["10.0.0.1:8001", "10.0.0.2:8001", "static:8001"]
        dns.error = None
        dns.names[NAME] = ["10.0.0.3"]
        assert await discovery.servers() == ["10.0.0.3:8001", "static:8001"]
        assert discovery.describe() == f"{URL} (10.0.0.3:8001), static:8001"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"cannot resolve Triton URL {URL} ([Errno {socket.EAI_NONAME}] Name or service not known); "
            "keeping its last 2 servers",
        ),
        ("INFO", f"Triton URL {URL} resolves again"),
    ]


async def test_flapping_records_follow_every_answer_and_each_failure_streak_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dns = records("10.0.0.1")
    discovery = Discovery([URL], dns)
    seen = []
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for answer in (["10.0.0.1"], ["10.0.0.1", "10.0.0.2"], None, ["10.0.0.1"], None, None, ["10.0.0.2"]):
            if answer is None:
                dns.names.pop(NAME, None)
            else:
                dns.names[NAME] = answer
            seen.append(await discovery.servers())
    one, both, two = ["10.0.0.1:8001"], ["10.0.0.1:8001", "10.0.0.2:8001"], ["10.0.0.2:8001"]
    assert seen == [one, both, both, one, one, one, two]
    levels = [r.levelname for r in caplog.records]
    assert levels == ["WARNING", "INFO", "WARNING", "INFO"]


async def test_a_name_never_resolved_has_no_servers_and_says_why() -> None:
    discovery = Discovery([URL], Records())
    assert await discovery.servers() == []
    assert discovery.describe() == f"{URL} (no addresses: [Errno {socket.EAI_NONAME}] Name or service not known)"


async def test_a_resolver_that_hangs_times_out_and_keeps_the_last_answer() -> None:
    dns = records("10.0.0.1")
    discovery = Discovery([URL], dns, timeout_s=0.05)
    assert await discovery.servers() == ["10.0.0.1:8001"]
    dns.gate = asyncio.Event()  # never set: the lookup hangs
    dns.names[NAME] = ["10.0.0.2"]
    assert await discovery.servers() == ["10.0.0.1:8001"]
    assert discovery.describe() == f"{URL} (10.0.0.1:8001: TimeoutError)"


async def test_the_system_resolver_answers_an_address_with_itself() -> None:
    """The default resolver (getaddrinfo in the executor); an IP literal needs no DNS."""
    assert await system_resolver("127.0.0.1") == ["127.0.0.1"]
    with pytest.raises(socket.gaierror):
        await system_resolver("no such host.invalid")


class Client:
    """Stands for a tritonclient client: the pool only creates and closes them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_the_pool_picks_ready_servers_least_loaded_and_closes_leavers_when_idle() -> None:
    pool = Pool(Client)
    assert pool.update(["a", "b"]) == (["a", "b"], [])
    assert pool.pick(set()) is None  # a server joins the rotation only once it is found ready
    a, b = pool.endpoints
    a.ready = b.ready = True
    a.inflight = 1
    assert pool.pick(set()) is b and pool.pick({"b"}) is a and pool.pick({"a", "b"}) is None
    b.inflight = 1
    assert {pool.pick(set()).url for _ in range(4)} == {"a", "b"}  # type: ignore[union-attr]  # ties share
    assert pool.update(["b", "c"]) == (["c"], ["a"])
    assert [e.url for e in pool.endpoints] == ["b", "c"] and not a.ready
    assert pool.pick({"b"}) is None  # c is not ready yet, a left
    await pool.close_idle()
    assert not a.client.closed  # its call in flight goes on
    a.inflight = 0
    await pool.close_idle()
    assert a.client.closed and not b.client.closed
    assert pool.update(["b", "c"]) == ([], [])
    await pool.close()
    assert pool.endpoints == [] and all(e.client.closed for e in (a, b))
