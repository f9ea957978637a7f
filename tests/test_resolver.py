"""FakeResolver: the resolver, and through a real aiohttp connector."""

from __future__ import annotations

import asyncio
import errno
import socket

import aiohttp
import pytest

from aiotestkit import CaseControlledTestServer, FakeResolver, NetworkAccessDenied

pytestmark = pytest.mark.asyncio


async def test_resolves_an_added_host_to_the_target() -> None:
    resolver = FakeResolver()
    resolver.add("api.example.com", 443, 8443)
    [result] = await resolver.resolve("api.example.com", 443)
    assert result["hostname"] == "api.example.com"
    assert (result["host"], result["port"], result["family"]) == (
        "127.0.0.1",
        8443,
        socket.AF_INET,
    )


async def test_host_names_compare_case_insensitively_and_in_idna_form() -> None:
    resolver = FakeResolver()
    resolver.add("API.Example.COM.", 443, 8443)
    resolver.add("bücher.example", 80, 8080)
    assert (await resolver.resolve("api.example.com", 443))[0]["port"] == 8443
    assert (await resolver.resolve("xn--bcher-kva.example", 80))[0]["port"] == 8080


async def test_ipv6_target() -> None:
    resolver = FakeResolver()
    resolver.add("v6.example", 80, 8080, target_host="::1")
    [result] = await resolver.resolve("v6.example", 80)
    assert (result["host"], result["family"]) == ("::1", socket.AF_INET6)


async def test_unknown_host_is_refused_with_a_message_saying_how_to_add_it() -> None:
    resolver = FakeResolver()
    resolver.add("api.example.com", 443, 8443)
    with pytest.raises(NetworkAccessDenied) as excinfo:
        await resolver.resolve("api.example.com", 80)
    error = excinfo.value
    assert isinstance(error, OSError)
    assert error.errno == errno.ECONNREFUSED
    assert (error.host, error.port) == ("api.example.com", 80)
    assert str(error) == (
        "no test server is known for api.example.com:80; "
        "add one with add('api.example.com', 80, server.port)"
    )


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("", 443, 1), ValueError, "host must be a host name"),
        ((1, 443, 1), TypeError, "host must be a str"),
        (("a.example", 0, 1), ValueError, "port must be between 1 and 65535, got 0"),
        (("a.example", "443", 1), TypeError, "port must be an int"),
        (("a.example", 443, 70000), ValueError, "target_port must be between 1 and 65535"),
    ],
)
async def test_add_rejects_bad_arguments(
    args: tuple[object, ...], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        FakeResolver().add(*args)  # type: ignore[arg-type]


async def test_add_rejects_a_target_host_that_is_not_an_address() -> None:
    with pytest.raises(ValueError, match="target_host must be an IP address, got 'localhost'"):
        FakeResolver().add("a.example", 80, 8080, target_host="localhost")


async def test_an_aiohttp_session_reaches_the_test_server_under_the_real_name() -> None:
    resolver = FakeResolver()
    async with CaseControlledTestServer() as server:
        assert server.port is not None
        resolver.add("api.example.com", 80, server.port)
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            task = asyncio.create_task(session.get("http://api.example.com/status"))
            request = await server.receive_request()
            assert request.host == "api.example.com"
            server.send_response(request, text="up")
            async with await task as response:
                assert await response.text() == "up"
            with pytest.raises(
                aiohttp.ClientConnectorError,
                match=r"no test server is known for www\.example\.org:80",
            ):
                await session.get("http://www.example.org/")
