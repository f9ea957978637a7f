"""The aiotestkit pytest plugin: fixtures, markers and options; the logic lives in the library.

Loaded automatically once aiotestkit is installed (entry point ``pytest11``); disable
it with ``-p no:aiotestkit``. Async fixtures are declared with pytest-asyncio, so they
work in its strict and auto modes alike.

Every async test runs with a :class:`aiotestkit.LoopInstrumentation` attached to its
loop (the hygiene checks and the hang guard, see ``docs/explanation/hygiene.md``).
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import unittest
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import trustme
from aiohttp.test_utils import unused_port

from ._core import (
    TRANSPORT_NAMES,
    CertificateAuthority,
    default_certificate_authority,
    select_transports,
)
from ._loop import (
    DEFAULT_HANG_TIMEOUT,
    MODES,
    LoopInstrumentation,
    VirtualClock,
    is_attached,
    resolve_modes,
)
from ._network import AiohttpRedirector, NetworkSandbox, TransportContext
from ._servers import (
    CaseControlledServerFactory,
    CaseControlledStreamServer,
    CaseControlledTestServer,
    CaseControlledWebSocketServer,
)

CaseControlledStreamServerFactory = CaseControlledServerFactory[CaseControlledStreamServer]
CaseControlledWebSocketServerFactory = CaseControlledServerFactory[CaseControlledWebSocketServer]

_TRANSPORTS_INI = "aiotestkit_transports"


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


_GC_GENERATIONS = {"young": 1, "full": 2, "off": None}
_INSTRUMENTATION = pytest.StashKey[LoopInstrumentation]()
_SETTINGS = pytest.StashKey[tuple[dict[str, str], float | None, int | None]]()


def _add_hygiene_options(parser: pytest.Parser) -> None:
    parser.addini(
        "aiotestkit_hygiene",
        f"hygiene checks of async tests: {', '.join(MODES)} (default strict)",
        default="strict",
    )
    parser.addini(
        "aiotestkit_hygiene_checks",
        "per-check hygiene modes, one 'check=mode' per line",
        type="linelist",
        default=[],
    )
    parser.addini(
        "aiotestkit_hang_timeout",
        f"seconds an async test may run before it is cancelled (default {DEFAULT_HANG_TIMEOUT:g};"
        " 0 turns the hang guard off)",
        default=f"{DEFAULT_HANG_TIMEOUT:g}",
    )
    parser.addini(
        "aiotestkit_hygiene_gc",
        "garbage collection at the end of each async test: young (default), full, off",
        default="young",
    )


def _parse_timeout(value: object, where: str) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where}: expected a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{where}: expected a number of seconds, got {value!r}") from None
    if not seconds >= 0:
        raise ValueError(f"{where}: expected seconds >= 0 (0 turns it off), got {value!r}")
    return seconds or None


def _configure_hygiene(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hygiene(mode=None, *, allow=(), warn=(), reason=None): hygiene checks of this "
        "test: a mode for all checks (strict, warn, off), checks allowed (off) or warned; "
        "allow and off need a reason",
    )
    config.addinivalue_line(
        "markers",
        "hang_timeout(seconds): cancel this async test after so many seconds (0: never)",
    )
    try:
        modes = resolve_modes(
            config.getini("aiotestkit_hygiene").strip(),
            config.getini("aiotestkit_hygiene_checks"),
            where="ini option aiotestkit_hygiene / aiotestkit_hygiene_checks",
        )
        timeout = _parse_timeout(
            config.getini("aiotestkit_hang_timeout"), "ini option aiotestkit_hang_timeout"
        )
        gc_option = config.getini("aiotestkit_hygiene_gc").strip()
        if gc_option not in _GC_GENERATIONS:
            raise ValueError(
                f"ini option aiotestkit_hygiene_gc: expected young, full or off, got {gc_option!r}"
            )
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[_SETTINGS] = (modes, timeout, _GC_GENERATIONS[gc_option])


def _instrumentation_for(item: pytest.Item) -> LoopInstrumentation:
    modes, timeout, gc_generation = item.config.stash[_SETTINGS]
    marker = timeout_marker = None
    for mark in item.iter_markers():  # closest first; one pass for both markers
        if mark.name == "hygiene" and marker is None:
            marker = mark
        elif mark.name == "hang_timeout" and timeout_marker is None:
            timeout_marker = mark
    if marker is not None:
        where = f"{item.nodeid}: @pytest.mark.hygiene"
        kwargs = dict(marker.kwargs)
        mode = marker.args[0] if marker.args else kwargs.pop("mode", None)
        allow = kwargs.pop("allow", ())
        warn = kwargs.pop("warn", ())
        reason = kwargs.pop("reason", None)
        if kwargs or len(marker.args) > 1:
            raise ValueError(
                f"{where} takes one mode and the keywords allow, warn and reason; "
                f"got {marker.args!r} {marker.kwargs!r}"
            )
        if isinstance(allow, str) or isinstance(warn, str):
            raise ValueError(f"{where}: allow and warn take a list of check names")
        if (allow or mode == "off") and not (isinstance(reason, str) and reason.strip()):
            raise ValueError(
                f"{where}: allowing a hygiene problem needs a reason; "
                "add reason='why this test may leave it behind'"
            )
        modes = resolve_modes(
            "strict", modes, marker_mode=mode, allow=allow, warn=warn, where=where
        )
    if timeout_marker is not None:
        where = f"{item.nodeid}: @pytest.mark.hang_timeout"
        if len(timeout_marker.args) != 1 or timeout_marker.kwargs:
            raise ValueError(f"{where} takes one number of seconds")
        timeout = _parse_timeout(timeout_marker.args[0], where)
    return LoopInstrumentation(
        checks=modes, hang_timeout=timeout, gc_generation=gc_generation, name=item.nodeid
    )


def _loop_scope(item: pytest.Item) -> str:
    scope = getattr(item, "_loop_scope", None)  # pytest-asyncio's, computed already
    if isinstance(scope, str):
        return scope
    marker = item.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") if marker else None
    return str(scope or item.config.getini("asyncio_default_test_loop_scope") or "function")


@pytest.fixture(autouse=True)
def _aiotestkit_loop_instrumentation(
    request: pytest.FixtureRequest,
) -> Iterator[LoopInstrumentation | None]:
    """Attach a LoopInstrumentation to the loop of every async test; check it at teardown.

    It runs before the test's other function-scoped fixtures are set up and after
    they are torn down, while the test's loop is still open, so what the test and its
    fixtures left behind fails this test.
    """
    __tracebackhide__ = True
    item = request.node
    if not pytest_asyncio.is_async_test(item):
        yield None
        return
    try:
        instrumentation = _instrumentation_for(item)
    except ValueError as error:
        pytest.fail(str(error), pytrace=False)
    # pytest-asyncio runs each test on the runner of its loop scope.
    runner = request.getfixturevalue(f"_{_loop_scope(item)}_scoped_runner")
    instrumentation.attach(runner.get_loop())
    item.stash[_INSTRUMENTATION] = instrumentation
    try:
        yield instrumentation
    finally:
        del item.stash[_INSTRUMENTATION]
        report = instrumentation.run_finish()
    report.raise_or_warn()


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Run an async test under its hang guard; a hang fails it with every task's stack."""
    __tracebackhide__ = True
    instrumentation = pyfuncitem.stash.get(_INSTRUMENTATION, None)
    if instrumentation is None:
        return (yield)
    instrumentation.start_hang_guard()
    try:
        return (yield)
    except BaseException:
        error = instrumentation.stop_hang_guard()
        if error is not None:
            raise error from None
        raise
    finally:
        instrumentation.stop_hang_guard()


@pytest.fixture
def loop_instrumentation(
    _aiotestkit_loop_instrumentation: LoopInstrumentation | None,
) -> LoopInstrumentation:
    """The :class:`aiotestkit.LoopInstrumentation` attached to this async test's loop.

    Add loop extensions with ``loop_instrumentation.add_extension(extension)``, or
    report problems with ``loop_instrumentation.add_issue(check, message)``.
    """
    if _aiotestkit_loop_instrumentation is None:
        pytest.fail(
            "loop_instrumentation is only available to async tests run by pytest-asyncio "
            "(mark the test with @pytest.mark.asyncio)",
            pytrace=False,
        )
    return _aiotestkit_loop_instrumentation


_SANDBOX_INI = "aiotestkit_network_sandbox"
_SANDBOX_MARKER = "network_sandbox"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ini options: hygiene, network sandbox, virtual clock, transports."""
    parser.addini(
        _TRANSPORTS_INI,
        type="args",
        default=list(TRANSPORT_NAMES),
        help="transports the 'transport' fixture runs each test over, by default "
        f"(space-separated, from: {' '.join(TRANSPORT_NAMES)})",
    )
    _add_hygiene_options(parser)
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
    """Register the markers (transports among them); check the hygiene ini options."""
    config.addinivalue_line(
        "markers",
        "transports(*names): run the test over these transports only "
        f"({', '.join(TRANSPORT_NAMES)}) instead of the {_TRANSPORTS_INI} ini option",
    )
    _configure_hygiene(config)
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
    test ends, refused connection attempts fail it, in its hygiene report (check
    ``refused_connections``), or with
    :meth:`~aiotestkit.NetworkSandbox.assert_nothing_blocked` where the hygiene checks
    are off, unless they were declared with ``expect_blocked()`` or the test is marked
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
    sandbox = NetworkSandbox(
        certificate_authority=tls_certificate_authority, allow_blocked=allow_blocked
    )
    async with sandbox:
        yield sandbox
    if not allow_blocked and not is_attached():
        # No hygiene checks on this loop to report the refusals in: fail here.
        sandbox.assert_nothing_blocked()


@pytest_asyncio.fixture
async def case_controlled_server_factory() -> AsyncIterator[
    CaseControlledServerFactory[CaseControlledTestServer]
]:
    """A factory that starts :class:`aiotestkit.CaseControlledTestServer` instances.

    ``await case_controlled_server_factory(**kwargs)`` takes the server's constructor
    arguments and returns it started. Every server it made is closed after the test,
    also when the test fails (an :class:`aiotestkit.CaseControlledServerFactory`).
    """
    async with CaseControlledServerFactory(CaseControlledTestServer) as factory:
        yield factory


@pytest_asyncio.fixture
async def case_controlled_server(
    case_controlled_server_factory: CaseControlledServerFactory[CaseControlledTestServer],
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
    async with CaseControlledServerFactory(CaseControlledStreamServer) as factory:
        yield factory


@pytest_asyncio.fixture
async def case_controlled_websocket_server_factory() -> AsyncIterator[
    CaseControlledWebSocketServerFactory
]:
    """A factory that starts :class:`aiotestkit.CaseControlledWebSocketServer` instances.

    ``await case_controlled_websocket_server_factory(scheme="https")`` takes the
    server's constructor arguments and returns it started. Every server it made is
    closed after the test, also when the test fails.
    """
    async with CaseControlledServerFactory(CaseControlledWebSocketServer) as factory:
        yield factory


@pytest_asyncio.fixture
async def case_controlled_websocket_server(
    case_controlled_websocket_server_factory: CaseControlledWebSocketServerFactory,
) -> CaseControlledWebSocketServer:
    """A started ``ws://`` :class:`aiotestkit.CaseControlledWebSocketServer`, closed after."""
    return await case_controlled_websocket_server_factory()


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
    instrumentation: LoopInstrumentation | None = request.getfixturevalue(
        "_aiotestkit_loop_instrumentation"
    )
    if instrumentation is not None and instrumentation.loop is loop:
        # An extension of the test's loop instrumentation: attached now, detached
        # after the hygiene checks, when the instrumentation restores the loop.
        instrumentation.add_extension(virtual_clock)
        yield virtual_clock
        return
    virtual_clock.attach(loop)
    try:
        yield virtual_clock
    finally:
        virtual_clock.detach(loop)


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
        ```python
        port = aiohttp_unused_port()
        client = await aiohttp_client(app, server_kwargs={"port": port})
        ```
    """
    return unused_port
