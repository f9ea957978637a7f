"""The unmodified ``aiogithubapi`` package against a stand-in for api.github.com.

``aiogithubapi.GitHub`` takes an injected ``aiohttp.ClientSession``: the
``aiohttp_redirector`` session reroutes ``https://api.github.com`` to a local
case-controlled server that presents a certificate for ``api.github.com`` from the test
CA. Every response below is written by the test.
"""

from __future__ import annotations

import asyncio

import pytest
from aiogithubapi import (
    GitHubAPI,
    GitHubAuthenticationException,
    GitHubNotFoundException,
    GitHubRatelimitException,
)

from aiotestkit import CaseControlledTestServer

pytestmark = pytest.mark.asyncio


async def test_repos_get(github: GitHubAPI, github_server: CaseControlledTestServer) -> None:
    task = asyncio.create_task(github.repos.get("octocat/hello-world"))
    request = await github_server.receive_request()
    assert request.method == "GET"
    assert request.path == "/repos/octocat/hello-world"
    assert request.host == "api.github.com"
    assert request.headers["Authorization"] == "token test-token"
    assert "application/vnd.github" in request.headers["Accept"]

    github_server.send_json(
        request,
        {
            "id": 1296269,
            "full_name": "octocat/Hello-World",
            "default_branch": "main",
            "stargazers_count": 80,
        },
    )
    response = await task
    assert response.status == 200
    assert response.data.full_name == "octocat/Hello-World"
    assert response.data.default_branch == "main"
    assert response.data.stargazers_count == 80


async def test_users_get(github: GitHubAPI, github_server: CaseControlledTestServer) -> None:
    task = asyncio.create_task(github.users.get("octocat"))
    request = await github_server.receive_request()
    assert request.path == "/users/octocat"
    github_server.send_json(request, {"login": "octocat", "id": 583231, "type": "User"})
    response = await task
    assert (response.data.login, response.data.id) == ("octocat", 583231)


async def test_missing_repository_is_not_found(
    github: GitHubAPI, github_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(github.repos.get("octocat/no-such-repo"))
    request = await github_server.receive_request()
    github_server.send_json(request, {"message": "Not Found"}, status=404)
    with pytest.raises(GitHubNotFoundException, match="Not Found"):
        await task


async def test_rate_limit_is_reported(
    github: GitHubAPI, github_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(github.users.get("octocat"))
    request = await github_server.receive_request()
    github_server.send_json(
        request,
        {"message": "API rate limit exceeded for 192.0.2.1."},
        status=403,
        headers={"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0"},
    )
    with pytest.raises(GitHubRatelimitException, match="API rate limit exceeded"):
        await task


async def test_forbidden_without_rate_limit_is_an_authentication_error(
    github: GitHubAPI, github_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(github.repos.get("octocat/private"))
    github_server.send_json(
        await github_server.receive_request(), {"message": "Resource not accessible"}, status=403
    )
    with pytest.raises(GitHubAuthenticationException, match="Resource not accessible"):
        await task
