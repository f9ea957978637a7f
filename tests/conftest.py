"""Fixtures shared by the test modules of aiotestkit itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from aiotestkit import CaseControlledTestServer, NetworkSandbox

pytest_plugins = ["pytester"]


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[NetworkSandbox]:
    """An open sandbox for tests that provoke refusals and inspect them themselves."""
    async with NetworkSandbox(allow_blocked=True) as sandbox:
        yield sandbox


@pytest_asyncio.fixture
async def server() -> AsyncIterator[CaseControlledTestServer]:
    """A started case-controlled HTTP server, closed after the test."""
    async with CaseControlledTestServer() as server:
        yield server
