"""The aioresponses facade, through the usage aioresponses documents, over real sockets.

Written here from aioresponses' README (not copied from its test suite). With
``AIOTESTKIT_COMPAT_PEER=1`` and aioresponses installed, the same suite runs against
aioresponses itself (``benchmarks/compat_peers.py`` does it in a throwaway venv): on
aiohttp 3.14 aioresponses fails it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

PEER = bool(os.environ.get("AIOTESTKIT_COMPAT_PEER"))

if PEER:  # pragma: no cover - run by benchmarks/compat_peers.py only
    from aioresponses import aioresponses  # type: ignore[import-not-found]
else:
    from aiotestkit.compat.aioresponses import aioresponses

pytestmark = [pytest.mark.asyncio]
if not PEER:
    pytestmark.append(pytest.mark.network_sandbox)

API = "https://api.example.com"


async def test_context_manager_get_with_body() -> None:
    with aioresponses() as m:
        m.get(f"{API}/hello", status=200, body="test")
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"{API}/hello")
            assert response.status == 200
            assert await response.text() == "test"
        m.assert_called_once_with(f"{API}/hello")


async def test_payload_is_sent_as_json() -> None:
    with aioresponses() as m:
        m.get(f"{API}/price", payload={"price": "3602.2"})
        async with aiohttp.ClientSession() as session, session.get(f"{API}/price") as response:
            assert response.content_type == "application/json"
            assert await response.json() == {"price": "3602.2"}


@aioresponses()
async def test_decorator_passes_the_mock(mocked: Any) -> None:
    mocked.get(f"{API}/a", status=201, headers={"X-Id": "7"})
    async with aiohttp.ClientSession() as session, session.get(f"{API}/a") as response:
        assert response.status == 201
        assert response.headers["X-Id"] == "7"


async def test_responses_for_one_url_are_used_in_order() -> None:
    with aioresponses() as m:
        m.get(f"{API}/flaky", status=503)
        m.get(f"{API}/flaky", status=200, body="ok")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{API}/flaky") as first:
                assert first.status == 503
            async with session.get(f"{API}/flaky") as second:
                assert second.status == 200
                assert await second.text() == "ok"


async def test_repeat_answers_every_request() -> None:
    with aioresponses() as m:
        m.get(f"{API}/tick", payload={"n": 1}, repeat=True)
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(f"{API}/tick") as response:
                    assert await response.json() == {"n": 1}
        assert len(m.requests[("GET", URL(f"{API}/tick"))]) == 3


async def test_post_and_assert_called_with_its_arguments() -> None:
    with aioresponses() as m:
        m.post(f"{API}/orders", status=201, payload={"id": 1})
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{API}/orders", json={"qty": 2}) as response,
        ):
            assert response.status == 201
        m.assert_called_with(f"{API}/orders", method="POST", json={"qty": 2})
        with pytest.raises(AssertionError):
            m.assert_called_with(f"{API}/orders", method="POST", json={"qty": 3})


async def test_params_are_part_of_the_recorded_url() -> None:
    with aioresponses() as m:
        m.get(f"{API}/items?page=2", payload=[])
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{API}/items", params={"page": "2"}) as response,
        ):
            assert await response.json() == []
        key = ("GET", URL(f"{API}/items?page=2"))
        assert key in m.requests
        assert m.requests[key][0].kwargs["params"] == {"page": "2"}


async def test_exception_is_raised_by_the_request_then_the_next_response() -> None:
    with aioresponses() as m:
        m.get(f"{API}/down", exception=aiohttp.ClientConnectionError("down"))
        m.get(f"{API}/down", body="back")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"{API}/down")
            async with session.get(f"{API}/down") as response:
                assert await response.text() == "back"


@pytest.mark.virtual_clock
async def test_timeout_is_raised_by_the_request() -> None:
    with aioresponses() as m:
        m.get(f"{API}/slow", timeout=True)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            with pytest.raises(asyncio.TimeoutError):
                await session.get(f"{API}/slow")


async def test_raise_for_status_sees_the_mocked_status() -> None:
    with aioresponses() as m:
        m.get(f"{API}/missing", status=404, body="no such thing")
        async with aiohttp.ClientSession(raise_for_status=True) as session:
            with pytest.raises(aiohttp.ClientResponseError) as excinfo:
                await session.get(f"{API}/missing")
        assert excinfo.value.status == 404


@pytest.mark.hygiene(
    allow=["unexpected_requests", "refused_connections"], reason="unmatched requests are the point"
)
async def test_an_unmatched_url_raises_a_connection_error() -> None:
    with aioresponses() as m:
        m.get(f"{API}/known")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"{API}/unknown")
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get("http://elsewhere.example.org/")


async def test_add_with_a_method_and_http_url() -> None:
    with aioresponses() as m:
        m.add("http://plain.example.com/put", "PUT", status=204)
        async with (
            aiohttp.ClientSession() as session,
            session.put("http://plain.example.com/put", data=b"x") as response,
        ):
            assert response.status == 204
        m.assert_called_once()
        m.assert_any_call("http://plain.example.com/put", "PUT", data=b"x")


@pytest.fixture
def mock_aioresponse() -> Iterator[Any]:
    with aioresponses() as m:
        yield m


async def test_the_fixture_pattern(mock_aioresponse: Any) -> None:
    mock_aioresponse.get(f"{API}/fixture", body="from a fixture")
    async with aiohttp.ClientSession() as session, session.get(f"{API}/fixture") as response:
        assert await response.text() == "from a fixture"
    mock_aioresponse.assert_called()


async def test_assert_not_called() -> None:
    with aioresponses() as m:
        m.get(f"{API}/never")
        m.assert_not_called()
