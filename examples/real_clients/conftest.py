"""Fixtures shared by the real-client example suites."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiogithubapi import GitHubAPI

from aiotestkit import AiohttpRedirector, CaseControlledTestServer


@pytest_asyncio.fixture
async def github_server(
    aiohttp_redirector: AiohttpRedirector,
) -> AsyncIterator[CaseControlledTestServer]:
    """A case-controlled HTTPS server standing in for api.github.com."""
    async with CaseControlledTestServer(scheme="https") as server:
        aiohttp_redirector.add_server("api.github.com", 443, server)
        yield server


@pytest_asyncio.fixture
async def github(aiohttp_redirector: AiohttpRedirector) -> GitHubAPI:
    """The unmodified aiogithubapi client, on the redirector's session."""
    # The client looks up the running loop when it is built: build it on the test's loop.
    return GitHubAPI(token="test-token", session=aiohttp_redirector.session)
