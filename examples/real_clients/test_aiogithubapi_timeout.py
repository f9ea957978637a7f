"""``aiogithubapi``'s own request timeout, while the stand-in for api.github.com holds the
request: 20 s of client time in milliseconds, on the virtual clock.

The client is unmodified; it takes the ``aiohttp_redirector`` session, which reroutes
``https://api.github.com`` to a local case-controlled server over real TLS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiogithubapi import GitHubAPI, GitHubConnectionException

from aiotestkit import AiohttpRedirector, CaseControlledTestServer, VirtualClock

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def github_server(
    aiohttp_redirector: AiohttpRedirector,
) -> AsyncIterator[CaseControlledTestServer]:
    async with CaseControlledTestServer(scheme="https") as server:
        aiohttp_redirector.add_server("api.github.com", 443, server)
        yield server


@pytest_asyncio.fixture
async def github(aiohttp_redirector: AiohttpRedirector) -> GitHubAPI:
    return GitHubAPI(token="test-token", session=aiohttp_redirector.session)


async def test_default_timeout_of_20_seconds(
    clock: VirtualClock, github: GitHubAPI, github_server: CaseControlledTestServer
) -> None:
    started = time.perf_counter()
    task = asyncio.create_task(github.repos.get("octocat/hello-world"))
    request = await github_server.receive_request()
    sent_at = clock.time()
    with pytest.raises(GitHubConnectionException, match="Timeout of 20 reached"):
        await task
    assert clock.time() - sent_at == 20
    await github_server.wait_for_disconnect(request)
    assert time.perf_counter() - started < 5


async def test_answer_one_second_before_the_timeout_arrives(
    clock: VirtualClock, github: GitHubAPI, github_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(github.users.get("octocat"))
    request = await github_server.receive_request()
    await asyncio.sleep(19)
    github_server.send_json(request, {"login": "octocat", "id": 583231, "type": "User"})
    response = await task
    assert response.data.login == "octocat"
    assert clock.time() == 19
