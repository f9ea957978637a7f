"""The aiotestkit pytest plugin: fixtures only; the logic lives in the library.

Loaded automatically once aiotestkit is installed (entry point ``pytest11``); disable
it with ``-p no:aiotestkit``. Async fixtures are declared with pytest-asyncio, so they
work in its strict and auto modes alike.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import trustme
from aiohttp.test_utils import unused_port

from ._http import CaseControlledTestServer
from ._redirector import AiohttpRedirector
from ._server_factory import CaseControlledServerFactory
from ._tls import CertificateAuthority, default_certificate_authority


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
    also when the test fails (an :class:`aiotestkit.CaseControlledServerFactory`).
    """
    async with CaseControlledServerFactory() as factory:
        yield factory


@pytest_asyncio.fixture
async def case_controlled_server(
    case_controlled_server_factory: CaseControlledServerFactory,
) -> CaseControlledTestServer:
    """A started plain-HTTP :class:`aiotestkit.CaseControlledTestServer`, closed after the test."""
    return await case_controlled_server_factory()


@pytest_asyncio.fixture
async def loop() -> asyncio.AbstractEventLoop:
    """The event loop the test runs in, for code written for pytest-aiohttp before 1.0.

    Older pytest-aiohttp tests take a ``loop`` fixture, as aiohttp's testing docs
    show (``async def test_hello(aiohttp_client, loop)``; a sync fixture calling
    ``loop.run_until_complete(aiohttp_client(app))``); pytest-aiohttp 1.x no
    longer has it. This is :func:`asyncio.get_running_loop` of the test's loop;
    new async code should call that instead. A fixture of your own named ``loop``
    takes precedence.
    """
    return asyncio.get_running_loop()


@pytest.fixture
def aiohttp_unused_port() -> Callable[[], int]:
    """A function returning a TCP port on 127.0.0.1 that was free when it was called.

    aiohttp's documented fixture, which pytest-aiohttp 1.x lacks:
    :func:`aiohttp.test_utils.unused_port`. It binds port 0, reads the number and
    closes the socket, so the port is free again, for anyone: another process,
    another xdist worker or another server of the same test may take it before
    yours binds it, and the test fails with ``EADDRINUSE`` now and then. Where the
    caller can take a *socket* instead of a number, give it a bound socket and
    there is no such window: pass nothing (``port=None`` picks a free port when
    binding), or ``socket_factory=`` to aiohttp's test servers, ``sock=`` to
    :func:`asyncio.start_server` or :class:`aiohttp.web.SockSite`. Use a port
    number only for what needs one before the server exists, such as a
    configuration file.

    Example:
        >>> port = aiohttp_unused_port()
        >>> client = await aiohttp_client(app, server_kwargs={"port": port})
    """
    return unused_port
