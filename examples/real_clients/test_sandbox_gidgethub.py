"""gidgethub over httpx and over aiohttp, unmodified, against the test's own api.github.com.

The same tests run for both HTTP stacks: the network sandbox routes api.github.com
to a case-controlled server, over verified TLS for that name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp
import gidgethub
import gidgethub.aiohttp
import gidgethub.httpx
import httpx
import pytest
import pytest_asyncio
from gidgethub.abc import GitHubAPI

from aiotestkit import CaseControlledTestServer, NetworkSandbox

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def over_httpx() -> AsyncIterator[GitHubAPI]:
    async with httpx.AsyncClient() as client:
        yield gidgethub.httpx.GitHubAPI(client, "requester")


@asynccontextmanager
async def over_aiohttp() -> AsyncIterator[GitHubAPI]:
    async with aiohttp.ClientSession() as session:
        yield gidgethub.aiohttp.GitHubAPI(session, "requester")


@pytest.fixture(params=[over_httpx, over_aiohttp], ids=["httpx", "aiohttp"])
def open_github(
    request: pytest.FixtureRequest,
) -> Callable[[], AbstractAsyncContextManager[GitHubAPI]]:
    opener: Callable[[], AbstractAsyncContextManager[GitHubAPI]] = request.param
    return opener


@pytest_asyncio.fixture
async def github(
    network_sandbox: NetworkSandbox, case_controlled_server: CaseControlledTestServer
) -> AsyncIterator[CaseControlledTestServer]:
    await network_sandbox.route("api.github.com", 443, case_controlled_server)
    yield case_controlled_server
    network_sandbox.assert_tls_verified()


async def test_getitem_repository(
    github: CaseControlledTestServer,
    open_github: Callable[[], AbstractAsyncContextManager[GitHubAPI]],
) -> None:
    async with open_github() as gh:
        task = asyncio.create_task(
            gh.getitem("/repos/{owner}/{repo}", {"owner": "aio-libs", "repo": "aiohttp"})
        )
        request = await github.receive_request()
        assert request.secure
        assert request.host == "api.github.com"
        assert (request.method, request.path) == ("GET", "/repos/aio-libs/aiohttp")
        assert request.headers["User-Agent"] == "requester"
        github.send_json(request, {"full_name": "aio-libs/aiohttp", "stargazers_count": 15000})
        assert await task == {"full_name": "aio-libs/aiohttp", "stargazers_count": 15000}


async def test_rate_limit_403(
    github: CaseControlledTestServer,
    open_github: Callable[[], AbstractAsyncContextManager[GitHubAPI]],
) -> None:
    async with open_github() as gh:
        task = asyncio.create_task(
            gh.getitem("/repos/{owner}/{repo}", {"owner": "aio-libs", "repo": "aiohttp"})
        )
        request = await github.receive_request()
        github.send_json(
            request,
            {"message": "API rate limit exceeded for 127.0.0.1."},
            status=403,
            headers={
                "X-RateLimit-Limit": "60",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "1700000000",
            },
        )
        with pytest.raises(gidgethub.RateLimitExceeded) as caught:
            await task
        assert caught.value.rate_limit is not None
        assert caught.value.rate_limit.limit == 60
        assert caught.value.rate_limit.remaining == 0
        assert "API rate limit exceeded" in str(caught.value)
