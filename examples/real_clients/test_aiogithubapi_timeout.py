"""``aiogithubapi``'s own request timeout, while the stand-in for api.github.com holds the
request: 20 s of client time in milliseconds, on the virtual clock.

The client is unmodified; it takes the ``aiohttp_redirector`` session, which reroutes
``https://api.github.com`` to a local case-controlled server over real TLS.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiogithubapi import GitHubAPI, GitHubConnectionException

from aiotestkit import CaseControlledTestServer, VirtualClock

pytestmark = pytest.mark.asyncio


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
