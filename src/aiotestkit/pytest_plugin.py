"""The aiotestkit pytest plugin: fixtures, a marker, an ini option; logic lives in the library.

Loaded automatically once aiotestkit is installed (entry point ``pytest11``); disable
it with ``-p no:aiotestkit``. Async fixtures are declared with pytest-asyncio, so they
work in its strict and auto modes alike.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import unittest
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
import trustme

from ._clock import VirtualClock
from ._http import CaseControlledTestServer
from ._redirector import AiohttpRedirector
from ._sandbox import NetworkSandbox
from ._tls import CertificateAuthority, default_certificate_authority

CaseControlledServerFactory = Callable[..., Awaitable[CaseControlledTestServer]]

_SANDBOX_INI = "aiotestkit_network_sandbox"
_SANDBOX_MARKER = "network_sandbox"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ini options: network sandbox and virtual clock for every async test."""
    parser.addini(
        "aiotestkit_virtual_clock",
        "run every asyncio test under aiotestkit.VirtualClock, as if it requested the "
        "clock fixture (opt a test out with @pytest.mark.virtual_clock(enabled=False))",
        type="bool",
        default=False,
    )
    parser.addini(
        _SANDBOX_INI,
        type="bool",
        default=False,
        help="run every async test in an aiotestkit NetworkSandbox (the network_sandbox "
        "fixture): no connection leaves the test; "
        "@pytest.mark.network_sandbox(enabled=False) turns it off for one test",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``network_sandbox`` and ``virtual_clock`` markers."""
    config.addinivalue_line(
        "markers",
        "virtual_clock(enabled=True, **options): run this asyncio test under "
        "aiotestkit.VirtualClock(**options) (autojump, autojump_threshold, "
        "in_flight_timeout, deadlock_timeout, start), as the clock fixture does",
    )
    config.addinivalue_line(
        "markers",
        f"{_SANDBOX_MARKER}(enabled=True, allow_blocked=False): run the test in an aiotestkit "
        "NetworkSandbox (enabled=False: not even with the ini option "
        f"{_SANDBOX_INI}); allow_blocked=True: refused connections do not fail the test",
    )


def _sandbox_options(node: pytest.Item) -> tuple[bool | None, bool]:
    marker = node.get_closest_marker(_SANDBOX_MARKER)
    if marker is None:
        return None, False
    unknown = set(marker.kwargs) - {"enabled", "allow_blocked"}
    if marker.args or unknown:
        raise pytest.UsageError(
            f"{node.nodeid}: @pytest.mark.{_SANDBOX_MARKER} takes only the keyword arguments "
            f"enabled= and allow_blocked=, got args={marker.args!r} kwargs={marker.kwargs!r}"
        )
    return bool(marker.kwargs.get("enabled", True)), bool(marker.kwargs.get("allow_blocked"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the ``network_sandbox`` fixture to marked tests; with the ini option, to async ones."""
    everywhere = bool(config.getini(_SANDBOX_INI))
    for item in items:
        enabled, _ = _sandbox_options(item)
        if enabled is None:
            function = getattr(item, "function", None)
            cls = getattr(item, "cls", None)
            enabled = (
                everywhere
                and inspect.iscoroutinefunction(function)
                # unittest's async test cases run their own loop; fixtures do not apply
                and not (isinstance(cls, type) and issubclass(cls, unittest.TestCase))
            )
        fixturenames: list[str] | None = getattr(item, "fixturenames", None)
        if enabled and fixturenames is not None and _SANDBOX_MARKER not in fixturenames:
            fixturenames.insert(0, _SANDBOX_MARKER)


def _virtual_clock_options(item: pytest.Item) -> dict[str, Any] | None:
    """The VirtualClock arguments for ``item``, or ``None`` if it runs in real time."""
    marker = item.get_closest_marker("virtual_clock")
    if marker is None:
        return {} if item.config.getini("aiotestkit_virtual_clock") else None
    options = dict(marker.kwargs)
    enabled = options.pop("enabled", marker.args[0] if marker.args else True)
    return options if enabled else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Give the clock fixture to asyncio tests marked virtual_clock (or all, by ini)."""
    if (
        isinstance(item, pytest.Function)
        and pytest_asyncio.is_async_test(item)
        and "clock" not in item.fixturenames
        and _virtual_clock_options(item) is not None
    ):
        item.fixturenames.append("clock")


def _test_loop(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoop:
    """The event loop pytest-asyncio runs the requesting test on."""
    item = request.node
    if not (isinstance(item, pytest.Function) and pytest_asyncio.is_async_test(item)):
        pytest.fail(
            f"the clock fixture needs an asyncio test, but {item.name} is not one: make it "
            "'async def' and mark it with @pytest.mark.asyncio (or use asyncio_mode = auto)",
            pytrace=False,
        )
    marker = item.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") if marker else None
    scope = scope or item.config.getini("asyncio_default_test_loop_scope") or "function"
    # pytest-asyncio runs each test on the runner fixture of its loop scope.
    runner = request.getfixturevalue(f"_{scope}_scoped_runner")
    loop: asyncio.AbstractEventLoop = runner.get_loop()
    return loop


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


def _test_loop_scope(node: pytest.Item) -> str:
    marker = node.get_closest_marker("asyncio")
    scope = (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")) if marker else None
    if scope is None:
        try:
            scope = node.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # a pytest-asyncio without that option
            scope = None
    return str(scope or "function")


@pytest_asyncio.fixture(loop_scope="function")
async def network_sandbox(
    request: pytest.FixtureRequest, tls_certificate_authority: CertificateAuthority
) -> AsyncIterator[NetworkSandbox]:
    """An open :class:`aiotestkit.NetworkSandbox` for the test, closed after it.

    Route hosts with ``await network_sandbox.route(host, port, server)``. When the
    test ends, refused connection attempts fail it
    (:meth:`~aiotestkit.NetworkSandbox.assert_nothing_blocked`) unless they were
    declared with ``expect_blocked()`` or the test is marked
    ``@pytest.mark.network_sandbox(allow_blocked=True)``.
    """
    enabled, allow_blocked = _sandbox_options(request.node)
    if enabled is False:
        raise pytest.UsageError(
            f"{request.node.nodeid} uses the network_sandbox fixture but is marked "
            "network_sandbox(enabled=False); remove one of the two"
        )
    loop_scope = _test_loop_scope(request.node)
    if loop_scope != "function":
        pytest.fail(
            f"{request.node.nodeid} runs on the {loop_scope}-scoped event loop, but the "
            "network_sandbox fixture patches the function-scoped one: the test would not be "
            "sandboxed. Open 'async with NetworkSandbox() as sandbox:' in the test, or mark "
            "it @pytest.mark.network_sandbox(enabled=False)",
            pytrace=False,
        )
    sandbox = NetworkSandbox(certificate_authority=tls_certificate_authority)
    async with sandbox:
        yield sandbox
    if not allow_blocked:
        sandbox.assert_nothing_blocked()


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


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Iterator[VirtualClock]:
    """A :class:`aiotestkit.VirtualClock` attached to the test's event loop.

    From its set-up to its tear-down the loop's time is virtual: sleeps and timeouts
    return as soon as every task waits, and ``await clock.advance(seconds)`` steps
    time by hand. Options come from ``@pytest.mark.virtual_clock(**options)``. It is
    a plain (sync) fixture, so it works with every loop scope; it fails the test if
    the test is not an asyncio test.
    """
    marker = request.node.get_closest_marker("virtual_clock")
    options = dict(marker.kwargs) if marker is not None else {}
    options.pop("enabled", None)
    try:
        virtual_clock = VirtualClock(**options)
    except (TypeError, ValueError) as error:
        pytest.fail(f"@pytest.mark.virtual_clock: {error}", pytrace=False)
    loop = _test_loop(request)
    virtual_clock.attach(loop)
    try:
        yield virtual_clock
    finally:
        virtual_clock.detach(loop)
