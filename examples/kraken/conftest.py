"""Fixtures shared by the Kraken example suites."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from aiotestkit import AiohttpRedirector, CaseControlledTestServer


@pytest_asyncio.fixture
async def kraken_server(
    aiohttp_redirector: AiohttpRedirector,
) -> AsyncIterator[CaseControlledTestServer]:
    """A case-controlled HTTPS server standing in for api.kraken.com."""
    async with CaseControlledTestServer(scheme="https") as server:
        aiohttp_redirector.add_server("api.kraken.com", 443, server)
        yield server
