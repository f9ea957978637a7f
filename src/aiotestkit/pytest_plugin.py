"""The aiotestkit pytest plugin: fixtures only; the logic lives in the library.

Loaded automatically once aiotestkit is installed (entry point ``pytest11``); disable
it with ``-p no:aiotestkit``. Async fixtures are declared with pytest-asyncio, so they
work in its strict and auto modes alike.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import trustme

from ._http import CaseControlledTestServer
from ._redirector import AiohttpRedirector
from ._tls import CertificateAuthority, default_certificate_authority

CaseControlledServerFactory = Callable[..., Awaitable[CaseControlledTestServer]]


@pytest.fixture(scope="session")
def tls_certificate_authority() -> CertificateAuthority:
    """The session's test certificate authority (a :class:`trustme.CA`).

    The same authority as :func:`aiotestkit.default_certificate_authority`, which
    aiotestkit's servers and clients use when given no SSL context.
    """
    return default_certificate_authority()


@pytest.fixture(scope="session")
def tls_certificate(tls_certificate_authority: CertificateAuthority) -> trustme.LeafCert:
    """A certificate for ``localhost``, ``127.0.0.1`` and ``::1`` from the test CA."""
    return tls_certificate_authority.leaf_certificate()


@pytest.fixture
def ssl_ctx(tls_certificate_authority: CertificateAuthority) -> ssl.SSLContext:
    """A server :class:`ssl.SSLContext` presenting :func:`tls_certificate`."""
    return tls_certificate_authority.server_context()


@pytest.fixture
def client_ssl_ctx(tls_certificate_authority: CertificateAuthority) -> ssl.SSLContext:
    """A client :class:`ssl.SSLContext` that trusts the test CA and verifies host names."""
    return tls_certificate_authority.client_context()


@pytest_asyncio.fixture
async def aiohttp_redirector(
    tls_certificate_authority: CertificateAuthority,
) -> AsyncIterator[AiohttpRedirector]:
    """An open :class:`aiotestkit.AiohttpRedirector`, closed after the test.

    Use ``aiohttp_redirector.add_server(host, port, server)`` and inject
    ``aiohttp_redirector.session`` into the code under test.
    """
    async with AiohttpRedirector(certificate_authority=tls_certificate_authority) as redirector:
        yield redirector


@pytest_asyncio.fixture
async def case_controlled_server_factory() -> AsyncIterator[CaseControlledServerFactory]:
    """A factory that starts :class:`aiotestkit.CaseControlledTestServer` instances.

    ``await case_controlled_server_factory(**kwargs)`` takes the server's constructor
    arguments and returns it started. Every server it made is closed after the test,
    also when the test fails.
    """
    servers: list[CaseControlledTestServer] = []

    async def start(**kwargs: Any) -> CaseControlledTestServer:
        server = CaseControlledTestServer(**kwargs)
        servers.append(server)
        await server.start_server()
        return server

    try:
        yield start
    finally:
        for server in reversed(servers):
            await server.close()


@pytest_asyncio.fixture
async def case_controlled_server(
    case_controlled_server_factory: CaseControlledServerFactory,
) -> CaseControlledTestServer:
    """A started plain-HTTP :class:`aiotestkit.CaseControlledTestServer`, closed after the test."""
    return await case_controlled_server_factory()
