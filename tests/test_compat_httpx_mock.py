"""The pytest-httpx compatible fixture, through pytest-httpx's documented usage, over real sockets.

Written here from pytest-httpx's README (async clients; not copied from its tests).
The teardown checks are asserted through pytester.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import httpx
import pytest

API = "https://api.example.com"


@pytest.mark.asyncio
async def test_add_response_with_json(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_response(url=f"{API}/price", json={"price": "3602.2"})
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{API}/price")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"price": "3602.2"}


@pytest.mark.asyncio
async def test_method_status_headers_and_text(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_response(
        url=f"{API}/orders",
        method="POST",
        status_code=201,
        headers={"X-Order": "7"},
        text="created",
    )
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{API}/orders", content=b"qty=1")
    assert response.status_code == 201
    assert response.headers["x-order"] == "7"
    assert response.text == "created"


@pytest.mark.asyncio
async def test_matching_on_headers_and_json_body(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_response(
        url=f"{API}/orders",
        method="POST",
        match_headers={"Authorization": "Bearer t0k"},
        match_json={"qty": 2},
        json={"id": 1},
    )
    aiotestkit_httpx_mock.add_response(
        url=f"{API}/raw", method="PUT", match_content=b"exact bytes", status_code=204
    )
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t0k"}) as client:
        created = await client.post(f"{API}/orders", json={"qty": 2})
        replaced = await client.put(f"{API}/raw", content=b"exact bytes")
    assert created.json() == {"id": 1}
    assert replaced.status_code == 204


@pytest.mark.asyncio
async def test_responses_are_sent_in_order_and_reusable_ones_again(
    aiotestkit_httpx_mock: Any,
) -> None:
    aiotestkit_httpx_mock.add_response(url=f"{API}/status", text="starting")
    aiotestkit_httpx_mock.add_response(url=f"{API}/status", text="ready", is_reusable=True)
    async with httpx.AsyncClient() as client:
        texts = [(await client.get(f"{API}/status")).text for _ in range(3)]
    assert texts == ["starting", "ready", "ready"]


@pytest.mark.asyncio
async def test_query_parameters_of_the_url_are_matched(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_response(url=f"{API}/items?page=2", json=["b"])
    aiotestkit_httpx_mock.add_response(url=f"{API}/items?page=1", json=["a"])
    async with httpx.AsyncClient() as client:
        first = await client.get(f"{API}/items", params={"page": 1})
        second = await client.get(f"{API}/items", params={"page": 2})
    assert (first.json(), second.json()) == (["a"], ["b"])


@pytest.mark.asyncio
async def test_optional_responses_may_stay_unused(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_response(url=f"{API}/used")
    aiotestkit_httpx_mock.add_response(url=f"{API}/maybe", is_optional=True)
    async with httpx.AsyncClient() as client:
        await client.get(f"{API}/used")


@pytest.mark.asyncio
@pytest.mark.httpx_mock(assert_all_responses_were_requested=False)
async def test_the_marker_makes_every_response_optional(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_response(url=f"{API}/never")


@pytest.mark.asyncio
async def test_add_callback_builds_the_response_from_the_request(
    aiotestkit_httpx_mock: Any,
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"path": request.url.path, "body": json.loads(request.content)}
        )

    aiotestkit_httpx_mock.add_callback(echo, url=f"{API}/echo", method="POST")
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{API}/echo", json={"n": 1})
    assert response.json() == {"path": "/echo", "body": {"n": 1}}


@pytest.mark.asyncio
async def test_add_exception_for_a_dropped_connection(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{API}/down")
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"{API}/down")


@pytest.mark.asyncio
@pytest.mark.virtual_clock
async def test_add_exception_for_a_timeout(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{API}/slow")
    async with httpx.AsyncClient(timeout=5.0) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{API}/slow")


@pytest.mark.asyncio
async def test_get_requests_and_get_request(aiotestkit_httpx_mock: Any) -> None:
    aiotestkit_httpx_mock.add_response(url=f"{API}/a", is_reusable=True)
    aiotestkit_httpx_mock.add_response(url="http://other.example.org/b", method="POST")
    async with httpx.AsyncClient() as client:
        await client.get(f"{API}/a", headers={"X-N": "1"})
        await client.post("http://other.example.org/b", json={"k": "v"})
        await client.get(f"{API}/a", headers={"X-N": "2"})
    requests = aiotestkit_httpx_mock.get_requests()
    assert [(r.method, str(r.url)) for r in requests] == [
        ("GET", f"{API}/a"),
        ("POST", "http://other.example.org/b"),
        ("GET", f"{API}/a"),
    ]
    assert [r.headers["x-n"] for r in aiotestkit_httpx_mock.get_requests(url=f"{API}/a")] == [
        "1",
        "2",
    ]
    posted = aiotestkit_httpx_mock.get_request(method="POST")
    assert posted is not None
    assert json.loads(posted.read()) == {"k": "v"}
    assert aiotestkit_httpx_mock.get_request(match_json={"k": "v"}).url == posted.url
    assert aiotestkit_httpx_mock.get_request(url=f"{API}/none") is None
    with pytest.raises(AssertionError, match="2 requests match"):
        aiotestkit_httpx_mock.get_request(url=f"{API}/a")


@pytest.mark.asyncio
async def test_unsupported_arguments_say_why(aiotestkit_httpx_mock: Any) -> None:
    with pytest.raises(TypeError, match=r"give url= as a str or httpx\.URL"):
        aiotestkit_httpx_mock.add_response()
    with pytest.raises(TypeError, match="match_files cannot be matched"):
        aiotestkit_httpx_mock.add_response(url=f"{API}/f", match_files={"f": b""})
    with pytest.raises(TypeError, match="cannot come from a server over a socket"):
        aiotestkit_httpx_mock.add_exception(ValueError("x"), url=f"{API}/e")
    with pytest.raises(ValueError, match=r"speaks HTTP/1\.1"):
        aiotestkit_httpx_mock.add_response(url=f"{API}/h2", http_version="HTTP/2.0")


INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def test_teardown_fails_for_unrequested_responses_and_unexpected_requests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_case=textwrap.dedent(
            """
            import httpx
            import pytest

            pytestmark = pytest.mark.asyncio


            async def test_unrequested(aiotestkit_httpx_mock):
                aiotestkit_httpx_mock.add_response(url="https://api.example.com/token")


            async def test_unexpected(aiotestkit_httpx_mock):
                aiotestkit_httpx_mock.add_response(url="https://api.example.com/items", json=[])
                async with httpx.AsyncClient() as client:
                    await client.get("https://api.example.com/items")
                    with pytest.raises(httpx.TransportError):
                        await client.get("https://api.example.com/itemz")
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_unrequested*",
            "*expectations used fewer times than declared (unused_expectations, 1):",
            "*GET /token headers={'Host': 'api.example.com'}: used 0 time(s), expected 1 time(s)*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_unexpected*",
            "*(unexpected_requests, 1):",
            "*GET /itemz; closest expectations:",
            "*GET /items headers={'Host': 'api.example.com'}: path: expected '/items', "
            "got '/itemz'*",
        ]
    )
