"""The aiotestkit pytest plugin: fixtures only; the logic lives in the library.

Loaded automatically once aiotestkit is installed (entry point ``pytest11``); disable
it with ``-p no:aiotestkit``. Async fixtures are declared with pytest-asyncio, so they
work in its strict and auto modes alike.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import trustme

from ._http import CaseControlledTestServer
from ._redirector import AiohttpRedirector
from ._stream import CaseControlledStreamServer
from ._tls import CertificateAuthority, default_certificate_authority
from ._transport import TRANSPORT_NAMES, TransportContext, select_transports
from ._websocket import CaseControlledWebSocketServer

CaseControlledServerFactory = Callable[..., Awaitable[CaseControlledTestServer]]
CaseControlledStreamServerFactory = Callable[..., Awaitable[CaseControlledStreamServer]]
CaseControlledWebSocketServerFactory = Callable[..., Awaitable[CaseControlledWebSocketServer]]

_TRANSPORTS_INI = "aiotestkit_transports"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ``aiotestkit_transports`` ini option."""
    parser.addini(
        _TRANSPORTS_INI,
        type="args",
        default=list(TRANSPORT_NAMES),
        help="transports the 'transport' fixture runs each test over, by default "
        f"(space-separated, from: {' '.join(TRANSPORT_NAMES)})",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``transports`` marker."""
    config.addinivalue_line(
        "markers",
        "transports(*names): run the test over these transports only "
        f"({', '.join(TRANSPORT_NAMES)}) instead of the {_TRANSPORTS_INI} ini option",
    )


def _uses_our_transport(metafunc: pytest.Metafunc) -> bool:
    """Whether ``transport`` is this plugin's fixture, not one of the project's own."""
    definitions = getattr(metafunc, "_arg2fixturedefs", {}).get("transport")
    if not definitions:
        return True
    function = inspect.unwrap(definitions[-1].func)
    return getattr(function, "__module__", None) == __name__


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that uses the ``transport`` fixture over its transports."""
    if "transport" not in metafunc.fixturenames or not _uses_our_transport(metafunc):
        return
    marker = metafunc.definition.get_closest_marker("transports")
    if marker is not None:
        names = select_transports(marker.args, source="@pytest.mark.transports")
    else:
        names = select_transports(
            metafunc.config.getini(_TRANSPORTS_INI), source=f"ini option {_TRANSPORTS_INI}"
        )
    metafunc.parametrize("transport", names, indirect=True)


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


@pytest_asyncio.fixture
async def transport(
    request: pytest.FixtureRequest, tls_certificate_authority: CertificateAuthority
) -> AsyncIterator[TransportContext]:
    """A :class:`aiotestkit.TransportContext`; the test runs once per transport.

    The transports are ``tcp``, ``tls`` and ``unix`` (the ``aiotestkit_transports``
    ini option), or those named by ``@pytest.mark.transports(...)``. Everything it
    started is closed after the test; a connection handler that raised fails the test.
    """
    name = getattr(request, "param", None)
    if name is None:
        raise pytest.UsageError(
            "the 'transport' fixture is parametrized when tests are collected: name it in "
            "the test's (or a fixture's) arguments instead of request.getfixturevalue()"
        )
    async with TransportContext(name, certificate_authority=tls_certificate_authority) as context:
        yield context


@pytest_asyncio.fixture
async def case_controlled_stream_server_factory() -> AsyncIterator[
    CaseControlledStreamServerFactory
]:
    """A factory that starts :class:`aiotestkit.CaseControlledStreamServer` instances.

    ``await case_controlled_stream_server_factory(transport="tls")`` takes the
    server's constructor arguments and returns it started. Every server it made is
    closed after the test, also when the test fails, socket files included.
    """
    servers: list[CaseControlledStreamServer] = []

    async def start(**kwargs: Any) -> CaseControlledStreamServer:
        server = CaseControlledStreamServer(**kwargs)
        servers.append(server)
        await server.start_server()
        return server

    try:
        yield start
    finally:
        for server in reversed(servers):
            await server.close()


@pytest_asyncio.fixture
async def case_controlled_websocket_server_factory() -> AsyncIterator[
    CaseControlledWebSocketServerFactory
]:
    """A factory that starts :class:`aiotestkit.CaseControlledWebSocketServer` instances.

    ``await case_controlled_websocket_server_factory(scheme="https")`` takes the
    server's constructor arguments and returns it started. Every server it made is
    closed after the test, also when the test fails.
    """
    servers: list[CaseControlledWebSocketServer] = []

    async def start(**kwargs: Any) -> CaseControlledWebSocketServer:
        server = CaseControlledWebSocketServer(**kwargs)
        servers.append(server)
        await server.start_server()
        return server

    try:
        yield start
    finally:
        for server in reversed(servers):
            await server.close()


@pytest_asyncio.fixture
async def case_controlled_websocket_server(
    case_controlled_websocket_server_factory: CaseControlledWebSocketServerFactory,
) -> CaseControlledWebSocketServer:
    """A started ``ws://`` :class:`aiotestkit.CaseControlledWebSocketServer`, closed after."""
    return await case_controlled_websocket_server_factory()
