"""Declarative pages and a case-controlled write, in one test, over real HTTPS.

The token and the three pages of the listing are declared with ``server.expect``:
the server answers them itself, and the test fails if the client skips one. The
write the test is about is case-controlled: the test receives it, checks it, and
decides the answer, while the client waits.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import pytest_asyncio
from shop_client import ShopClient, ShopError

from aiotestkit import CaseControlledTestServer, NetworkSandbox

pytestmark = pytest.mark.asyncio

PAGES = {
    1: {"items": [{"id": 1, "stock": 4}, {"id": 2, "stock": 0}], "next_page": 2},
    2: {"items": [{"id": 3, "stock": 9}], "next_page": 3},
    3: {"items": [{"id": 4, "stock": 1}], "next_page": None},
}


@pytest_asyncio.fixture
async def shop(network_sandbox: NetworkSandbox) -> CaseControlledTestServer:
    """The test server of api.shop.example, with the token and the pages declared."""
    server = await network_sandbox.route("api.shop.example", 443, CaseControlledTestServer())
    server.expect(
        "POST",
        "/oauth/token",
        json={"grant_type": "client_credentials", "client_id": "id", "client_secret": "s3cret"},
    ).respond(json={"access_token": "t0k", "expires_in": 3600})
    for number, page in PAGES.items():
        server.expect(
            "GET", "/products", query={"page": number}, headers={"Authorization": "Bearer t0k"}
        ).respond(json=page)
    return server


async def test_discontinues_the_product_out_of_stock(shop: CaseControlledTestServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = ShopClient(session, "id", "s3cret")
        task = asyncio.create_task(client.discontinue_out_of_stock())

        # The token and the three pages were answered by the server; the write is ours.
        request = await shop.receive_request()
        assert (request.method, request.path) == ("PATCH", "/products/2")
        assert request.headers["Authorization"] == "Bearer t0k"
        assert await request.json() == {"status": "discontinued"}
        shop.send_json(request, {"id": 2, "status": "discontinued"})

        assert await task == [2]
    assert [f"{r.method} {r.path_qs}" for r in shop.requests] == [
        "POST /oauth/token",
        "GET /products?page=1",
        "GET /products?page=2",
        "GET /products?page=3",
        "PATCH /products/2",
    ]


async def test_a_refused_write_is_an_error(shop: CaseControlledTestServer) -> None:
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(ShopClient(session, "id", "s3cret").discontinue_out_of_stock())
        shop.send_json(await shop.receive_request(), {"error": "locked"}, status=409)
        with pytest.raises(ShopError, match="discontinue 2: HTTP 409"):
            await task
