"""The aiotestkit pytest plugin: fixtures and hook wiring; the logic lives in the library.

Loaded automatically once aiotestkit is installed (entry point ``pytest11``); disable
it with ``-p no:aiotestkit``. Every async test, whoever runs it (pytest-asyncio in
strict or auto mode, aiohttp's pytest plugin, anyio's on asyncio), runs with a
:class:`aiotestkit.LoopInstrumentation` attached to its loop: the hygiene checks and
the hang guard (``docs/explanation/hygiene.md``). The fixtures are plain pytest fixtures that run
their async set-up and teardown on the test's loop, so they work under each runner.
Internally they depend only on private fixtures (``_aiotestkit_*``), never on names
a project may define itself.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ssl
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

import aiotestkit

from ._plugin import (
    NotCovered,
    TestRun,
    TestRunnerAdapter,
    add_options,
    configure,
    finish_test_run,
    quiet_unset_fixture_loop_scope,
    require_test_run,
    runner_for,
    sandbox_options,
    start_test_run,
    test_run_of,
    test_settings,
    transports_for,
    unconfigure,
    wants_sandbox,
)

if TYPE_CHECKING:
    # Imported when a fixture first needs them (through the package face, which
    # makes their ``__module__`` the public one): loading the plugin imports neither
    # the servers, the network sandbox nor the TLS stack.
    import trustme

    from ._core import CertificateAuthority
    from ._loop import LoopInstrumentation, VirtualClock
    from ._network import AiohttpRedirector, NetworkSandbox, TransportContext
    from ._servers import (
        CaseControlledServerFactory,
        CaseControlledStreamServer,
        CaseControlledTestServer,
        CaseControlledWebSocketServer,
    )

    CaseControlledStreamServerFactory = CaseControlledServerFactory[CaseControlledStreamServer]
    CaseControlledWebSocketServerFactory = CaseControlledServerFactory[
        CaseControlledWebSocketServer
    ]

_STARTS_IN_LOOP_FIXTURE = pytest.StashKey[TestRunnerAdapter]()
_NOT_COVERED = pytest.StashKey[dict[str, int]]()
_LATE_LOOP = (
    "{runner} makes their loop only when it calls them, too late for the {what} the "
    "ini option or marker asks for (hygiene checks and hang guard apply); add its "
    "'loop' fixture to their arguments"
)
_CLOCK = "_aiotestkit_virtual_clock"
_INSTRUMENTATION = "_aiotestkit_test_run"
_SANDBOX = "_aiotestkit_network_sandbox"
_ASYNC_TEST_HOOKS = "aiotestkit-async-tests"


# -- hooks -------------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)  # after pytest-asyncio registered its options
def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the ini options (hygiene, hang guard, sandbox, virtual clock, transports)."""
    add_options(parser, pluginmanager)


@pytest.hookimpl(tryfirst=True)  # before pytest-asyncio's
def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and check the ini options; keep pytest-asyncio's start quiet."""
    quiet_unset_fixture_loop_scope()
    configure(config)
    config.stash[_NOT_COVERED] = {}
    if not config.pluginmanager.has_plugin("aiohttp.pytest_plugin"):
        config.pluginmanager.register(_LoopFixture(), "aiotestkit-loop")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the loop classes the run's tests patched methods of, for their loops."""
    unconfigure()


def _is_ours(definitions: dict[str, Any], name: str) -> bool:
    """Whether fixture ``name`` (in ``definitions``) is this plugin's, not the project's."""
    fixturedefs = definitions.get(name)
    if not fixturedefs:
        return True
    function = inspect.unwrap(fixturedefs[-1].func)
    return getattr(function, "__module__", None) == __name__


def _uses_our_transport(metafunc: pytest.Metafunc) -> bool:
    """Whether ``transport`` is this plugin's fixture, not one of the project's own."""
    return _is_ours(getattr(metafunc, "_arg2fixturedefs", {}), "transport")


def _has_our_sandbox(item: pytest.Item, fixturenames: list[str]) -> bool:
    """Whether the test's fixtures include this plugin's ``network_sandbox`` (or its own)."""
    if _SANDBOX in fixturenames:
        return True
    if "network_sandbox" not in fixturenames:
        return False
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return _is_ours(definitions, "network_sandbox")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that uses the ``transport`` fixture over its transports."""
    if "transport" in metafunc.fixturenames and _uses_our_transport(metafunc):
        metafunc.parametrize("transport", transports_for(metafunc), indirect=True)


@pytest.hookimpl(trylast=True)  # after other plugins' markers and deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each async test its instrumentation, and its sandbox and clock if it wants them.

    Which runner runs a test is decided here, once (:func:`runner_for` keeps it in
    the item's stash); a sync test gets none of aiotestkit's fixtures and costs
    nothing more to run. The test's run (its instrumentation) starts before the
    test's other function-scoped fixtures are set up and finishes after they are
    torn down: in the set-up and teardown of the runner's own loop fixture where it
    has one for the test (pytest-asyncio's function-scoped runner, moved to that
    place), else of aiotestkit's instrumentation fixture, put there. The sandbox comes
    right after; the virtual clock, marked ``virtual_clock`` (or by the ini option),
    at the end. Each async test gets its own list of fixture names: parametrized
    tests share one otherwise, and their markers may differ.
    """
    loop_fixtures: set[str] = set()
    async_tests = False
    for item in items:
        fixturenames: list[str] | None = getattr(item, "fixturenames", None)
        if fixturenames is None:
            continue
        runner = runner_for(item)
        sandbox = not _has_our_sandbox(item, fixturenames) and wants_sandbox(item)
        if runner is None:
            if sandbox:  # fails at set-up, saying it needs an async test
                fixturenames.insert(0, _SANDBOX)
            continue
        async_tests = True
        try:
            settings = test_settings(item)
        except ValueError:
            settings = None  # reported by _aiotestkit_test_run, as the test's error
        loop_fixture = None
        if settings is not None and isinstance(item, pytest.Function):
            loop_fixture = runner.loop_fixture(item)
        first = loop_fixture or _INSTRUMENTATION
        names = [name for name in fixturenames if name not in (_INSTRUMENTATION, first)]
        index = _first_function_scoped(item, names)
        names.insert(index, first)
        if loop_fixture is not None:
            loop_fixtures.add(loop_fixture)
            item.stash[_STARTS_IN_LOOP_FIXTURE] = runner
        if sandbox:
            names.insert(index + 1, _SANDBOX)
        if settings is not None and settings.virtual_clock is not None and _CLOCK not in names:
            names.append(_CLOCK)
        item.fixturenames = names  # type: ignore[attr-defined]
    if async_tests:
        hooks = config.pluginmanager.get_plugin(_ASYNC_TEST_HOOKS)
        if hooks is None:
            hooks = _AsyncTestHooks()
            config.pluginmanager.register(hooks, _ASYNC_TEST_HOOKS)
        hooks.loop_fixtures |= loop_fixtures


def _first_function_scoped(item: pytest.Item, names: list[str]) -> int:
    """The index in ``names`` of the first function-scoped fixture (or of the end).

    Higher-scoped fixtures come first in pytest's order; they stay before the
    instrumentation, as they would before an autouse function-scoped fixture.
    """
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for index, name in enumerate(names):
        fixturedefs = definitions.get(name)
        if not fixturedefs or fixturedefs[-1].scope == "function":
            return index
    return len(names)


class _AsyncTestHooks:
    """The hooks that act on async tests while they run: a plugin of its own.

    Registered at collection only when an async test that a runner aiotestkit knows
    runs is collected, so that a run of sync tests pays nothing per test or per
    fixture set-up.
    """

    def __init__(self) -> None:
        self.loop_fixtures: set[str] = set()
        """The runners' loop fixtures that collected tests start their runs in."""

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        """Start a test's run in the set-up of its runner's loop fixture; finish it after.

        Only for the tests given that loop fixture at collection. The run finishes in
        a finalizer of the loop fixture, which runs after the fixtures that depend on it
        are torn down and before the fixture closes its loop.
        """
        value = yield
        if fixturedef.argname in self.loop_fixtures and fixturedef.scope == "function":
            item = request.node
            runner = item.stash.get(_STARTS_IN_LOOP_FIXTURE, None)
            if runner is not None and test_run_of(item) is None:
                run = start_test_run(item, runner, runner.loop_of(value))
                fixturedef.addfinalizer(functools.partial(finish_test_run, run))
        return value

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Generator[None, object, object]:
        """Run an async test under its hang guard; a hang fails it with every task's stack."""
        __tracebackhide__ = True
        run = test_run_of(pyfuncitem)
        if run is None:
            return (yield)
        with run.runner.guard_call(pyfuncitem, run.instrumentation, attach=run.loop is None):
            return (yield)


def _not_covered(config: pytest.Config, reason: str) -> None:
    counts = config.stash[_NOT_COVERED]
    counts[reason] = counts.get(reason, 0) + 1


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say once which async tests missed some of aiotestkit's checks, and why."""
    for reason, count in config.stash.get(_NOT_COVERED, {}).items():
        terminalreporter.write_line(f"aiotestkit: {count} async test(s): {reason}")


# -- the test's loop and its instrumentation ---------------------------------------------


@pytest.fixture
def _aiotestkit_test_run(request: pytest.FixtureRequest) -> Iterator[TestRun | None]:
    """Attach a LoopInstrumentation to the loop of an async test; check it at teardown.

    It gives the test being run (its runner, instrumentation and loop), or ``None``
    for a sync test or one the runner runs on no asyncio loop.

    ``pytest_collection_modifyitems`` puts it in the fixtures of every async test
    whose runner has no loop fixture of its own to start the run in (see
    :meth:`aiotestkit._plugin.TestRunnerAdapter.loop_fixture`), before the test's
    other function-scoped fixtures. It runs before they are set up and after they are
    torn down, while the test's loop is still open, so what the test and its fixtures
    left behind fails this test. aiotestkit's other fixtures take the run from
    :func:`aiotestkit._plugin.current_test_run`.
    """
    __tracebackhide__ = True
    item = request.node
    run = test_run_of(item)
    runner = runner_for(item)
    if run is not None or runner is None:  # started in the loop fixture; or a sync test
        yield run
        return
    try:
        loop_context = runner.open_loop(request)
        loop = loop_context.__enter__()
    except NotCovered as reason:
        _not_covered(item.config, f"no hygiene checks: {reason}")
        yield None
        return
    try:
        run = start_test_run(item, runner, loop)
        try:
            yield run
        finally:
            finish_test_run(run)
    finally:
        loop_context.__exit__(None, None, None)


@pytest.fixture
def loop_instrumentation() -> LoopInstrumentation:
    """The :class:`aiotestkit.LoopInstrumentation` attached to this async test's loop.

    Add loop extensions with ``loop_instrumentation.add_extension(extension)``, or
    report problems with ``loop_instrumentation.add_issue(check, message)``.
    """
    return require_test_run("loop_instrumentation").instrumentation


class _LoopFixture:
    """The ``loop`` fixture, registered only where aiohttp's plugin does not define it."""

    @pytest.fixture
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the test runs on, for code written for pytest-aiohttp before 1.0.

        Older pytest-aiohttp tests take a ``loop`` fixture, as aiohttp's testing docs
        show (``async def test_hello(aiohttp_client, loop)``; a sync fixture calling
        ``loop.run_until_complete(aiohttp_client(app))``); pytest-aiohttp 1.x no
        longer has it. New async code should call :func:`asyncio.get_running_loop`.
        Where ``aiohttp.pytest_plugin`` is loaded, its own ``loop`` fixture is used
        (aiotestkit does not define one), and a project's ``loop`` fixture wins.
        """
        return require_test_run("loop").require_loop("loop")


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_certificate_authority() -> CertificateAuthority:
    """The session's test certificate authority (a :class:`trustme.CA`).

    The same authority as :func:`aiotestkit.default_certificate_authority`, which
    aiotestkit's servers and clients use when given no SSL context. A project may
    override it with its own :class:`trustme.CA`; aiotestkit's fixtures then use that one.
    """
    return aiotestkit.default_certificate_authority()


def _trustme_authority(authority: object) -> trustme.CA:
    """The project's ``tls_certificate_authority`` if it is a trustme CA, else aiotestkit's.

    A function, not a fixture: the fixtures that need it take ``tls_certificate_authority``
    (session-scoped, set up once) and call it, at no per-test fixture set-up.
    """
    import trustme

    if isinstance(authority, trustme.CA):
        return authority
    return aiotestkit.default_certificate_authority()


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


# -- network ---------------------------------------------------------------------------------


@pytest.fixture
def aiohttp_redirector(tls_certificate_authority: object) -> Iterator[AiohttpRedirector]:
    """An open :class:`aiotestkit.AiohttpRedirector`, closed after the test.

    Use ``aiohttp_redirector.add_server(host, port, server)`` and inject
    ``aiohttp_redirector.session`` into the code under test.
    """
    run = require_test_run("aiohttp_redirector")
    redirector = aiotestkit.AiohttpRedirector(
        certificate_authority=_trustme_authority(tls_certificate_authority)
    )
    # Nothing to run on the loop now: the session is made when the test first uses it.
    redirector.open_nowait(run.require_loop("aiohttp_redirector"))
    try:
        yield redirector
    finally:
        run.run("aiohttp_redirector", redirector.close)


def _sandbox_fixture(
    fixture: str, tls_certificate_authority: object
) -> Generator[NetworkSandbox | None, None, None]:
    """A sandbox fixture's body: open a NetworkSandbox on the test's loop, close it after.

    For ``network_sandbox`` (named by the test or its fixtures) and for
    ``_aiotestkit_network_sandbox`` (given by the ini option or marker), one fixture
    each, never both in one test. The latter gives ``None`` where the runner cannot
    give a sandbox (said once at the end of the run).
    """
    run = require_test_run(fixture)
    item = run.item
    enabled, allow_blocked = sandbox_options(item)
    if enabled is False:
        raise pytest.UsageError(
            f"{item.nodeid} uses the network_sandbox fixture but is marked "
            "network_sandbox(enabled=False); remove one of the two"
        )
    if run.loop is None and fixture == _SANDBOX:
        _not_covered(item.config, _LATE_LOOP.format(runner=run.runner.name, what="sandbox"))
        yield None
        return
    sandbox = aiotestkit.NetworkSandbox(
        certificate_authority=_trustme_authority(tls_certificate_authority),
        allow_blocked=allow_blocked,
    )
    # Opening runs nothing on the loop: it patches it (and what the process shares).
    sandbox.open_nowait(run.require_loop("network_sandbox"))
    try:
        yield sandbox
    finally:
        run.run("network_sandbox", sandbox.close)
    from ._loop import is_attached

    if not allow_blocked and not is_attached(run.loop):
        # No hygiene checks on this loop to report the refusals in: fail here.
        sandbox.assert_nothing_blocked()


@pytest.fixture
def _aiotestkit_network_sandbox(
    tls_certificate_authority: object,
) -> Iterator[NetworkSandbox | None]:
    """The test's open NetworkSandbox, for the ini option and the marker.

    ``pytest_collection_modifyitems`` gives it to the tests that want a sandbox
    without naming ``network_sandbox``; refusals fail the test after it.
    """
    yield from _sandbox_fixture(_SANDBOX, tls_certificate_authority)


@pytest.fixture
def network_sandbox(tls_certificate_authority: object) -> Iterator[NetworkSandbox]:
    """An open :class:`aiotestkit.NetworkSandbox` for the test, closed after it.

    Route hosts with ``await network_sandbox.route(host, port, server)``. When the
    test ends, refused connection attempts fail it, in its hygiene report (check
    ``refused_connections``), or with
    :meth:`~aiotestkit.NetworkSandbox.assert_nothing_blocked` where the hygiene checks
    are off, unless they were declared with ``expect_blocked()`` or the test is marked
    ``@pytest.mark.network_sandbox(allow_blocked=True)``. It patches the loop the test
    runs on, whatever its scope.
    """
    for sandbox in _sandbox_fixture("network_sandbox", tls_certificate_authority):
        assert sandbox is not None  # only the ini option's sandbox may be missing
        yield sandbox


@pytest.fixture
def aiotestkit_httpx_mock(request: pytest.FixtureRequest, network_sandbox: NetworkSandbox) -> Any:
    """A pytest-httpx compatible mock: responses for httpx served by a real test server.

    An :class:`aiotestkit.compat.httpx_mock.HTTPXMock` routed through the test's
    network sandbox (see ``docs/migration/respx-pytest-httpx.md``). Its responses and
    the requests no response matched are checked when the sandbox closes, in the test's
    hygiene report (``unused_expectations``, ``unexpected_requests``). The
    ``httpx_mock`` marker takes ``assert_all_responses_were_requested=False``.
    """
    from .compat.httpx_mock import HTTPXMock  # httpx is an optional dependency

    return HTTPXMock.for_test(request.node, network_sandbox)


@pytest.fixture
def transport(
    request: pytest.FixtureRequest, tls_certificate_authority: object
) -> Iterator[TransportContext]:
    """A :class:`aiotestkit.TransportContext`; the test runs once per transport.

    The transports are ``tcp``, ``tls`` and ``unix`` (the ``aiotestkit_transports``
    ini option), or those named by ``@pytest.mark.transports(...)``. Everything it
    started is closed after the test; a connection handler that raised fails the test.
    """
    run = require_test_run("transport")
    name = getattr(request, "param", None)
    if name is None:
        raise pytest.UsageError(
            "the 'transport' fixture is parametrized when tests are collected: name it in "
            "the test's (or a fixture's) arguments instead of request.getfixturevalue()"
        )
    context = aiotestkit.TransportContext(
        name, certificate_authority=_trustme_authority(tls_certificate_authority)
    )
    yield from run.enter("transport", context)


# -- servers ----------------------------------------------------------------------------------


_F = TypeVar("_F", bound="CaseControlledServerFactory[Any]")


def _factory_fixture(run: TestRun, fixture: str, factory: _F) -> Generator[_F, None, None]:
    """A server factory fixture's body: entering a factory runs nothing, closing does."""
    run.require_loop(fixture)
    try:
        yield factory
    finally:
        run.run(fixture, factory.close)


_SV = TypeVar("_SV", "CaseControlledTestServer", "CaseControlledWebSocketServer")


def _server_fixture(run: TestRun, fixture: str, server: _SV) -> Generator[_SV, None, None]:
    """A server fixture's body: start ``server`` on the test's loop, close it after.

    The server is its own fixture's, not a factory fixture's: one fixture set-up less
    per test. It is closed also when starting it failed, as a factory closes it.
    """
    try:
        run.run(fixture, server.start_server)
        yield server
    finally:
        run.run(fixture, server.close)


@pytest.fixture
def case_controlled_server_factory() -> Iterator[
    CaseControlledServerFactory[CaseControlledTestServer]
]:
    """A factory that starts :class:`aiotestkit.CaseControlledTestServer` instances.

    ``await case_controlled_server_factory(**kwargs)`` takes the server's constructor
    arguments and returns it started. Every server it made is closed after the test,
    also when the test fails (an :class:`aiotestkit.CaseControlledServerFactory`).
    """
    run = require_test_run("case_controlled_server_factory")
    factory = aiotestkit.CaseControlledServerFactory(aiotestkit.CaseControlledTestServer)
    yield from _factory_fixture(run, "case_controlled_server_factory", factory)


@pytest.fixture
def case_controlled_server() -> Iterator[CaseControlledTestServer]:
    """A started plain-HTTP :class:`aiotestkit.CaseControlledTestServer`, closed after the test."""
    run = require_test_run("case_controlled_server")
    server = aiotestkit.CaseControlledTestServer()
    yield from _server_fixture(run, "case_controlled_server", server)


@pytest.fixture
def case_controlled_stream_server_factory() -> Iterator[CaseControlledStreamServerFactory]:
    """A factory that starts :class:`aiotestkit.CaseControlledStreamServer` instances.

    ``await case_controlled_stream_server_factory(transport="tls")`` takes the
    server's constructor arguments and returns it started. Every server it made is
    closed after the test, also when the test fails, socket files included.
    """
    run = require_test_run("case_controlled_stream_server_factory")
    factory = aiotestkit.CaseControlledServerFactory(aiotestkit.CaseControlledStreamServer)
    yield from _factory_fixture(run, "case_controlled_stream_server_factory", factory)


@pytest.fixture
def case_controlled_websocket_server_factory() -> Iterator[CaseControlledWebSocketServerFactory]:
    """A factory that starts :class:`aiotestkit.CaseControlledWebSocketServer` instances.

    ``await case_controlled_websocket_server_factory(scheme="https")`` takes the
    server's constructor arguments and returns it started. Every server it made is
    closed after the test, also when the test fails.
    """
    run = require_test_run("case_controlled_websocket_server_factory")
    factory = aiotestkit.CaseControlledServerFactory(aiotestkit.CaseControlledWebSocketServer)
    yield from _factory_fixture(run, "case_controlled_websocket_server_factory", factory)


@pytest.fixture
def case_controlled_websocket_server() -> Iterator[CaseControlledWebSocketServer]:
    """A started ``ws://`` :class:`aiotestkit.CaseControlledWebSocketServer`, closed after."""
    run = require_test_run("case_controlled_websocket_server")
    server = aiotestkit.CaseControlledWebSocketServer()
    yield from _server_fixture(run, "case_controlled_websocket_server", server)


# -- time ----------------------------------------------------------------------------------------


@pytest.fixture
def _aiotestkit_virtual_clock() -> VirtualClock | None:
    """The test's VirtualClock, an extension of its loop instrumentation.

    ``None`` where the ini option or marker asks for a clock the runner cannot give
    (said once at the end of the run); the ``clock`` fixture never is.
    """
    run = require_test_run("clock")
    item = run.item
    if run.loop is None and "clock" not in item.fixturenames:  # type: ignore[attr-defined]
        _not_covered(item.config, _LATE_LOOP.format(runner=run.runner.name, what="virtual clock"))
        return None
    options = test_settings(item).virtual_clock or {}
    try:
        virtual_clock = aiotestkit.VirtualClock(**options)
    except (TypeError, ValueError) as error:
        pytest.fail(f"@pytest.mark.virtual_clock: {error}", pytrace=False)
    # Attached now, detached after the hygiene checks, when the instrumentation
    # restores the loop.
    run.require_loop("clock")
    run.instrumentation.add_extension(virtual_clock)
    return virtual_clock


@pytest.fixture
def clock(_aiotestkit_virtual_clock: VirtualClock | None) -> VirtualClock:
    """A :class:`aiotestkit.VirtualClock` attached to the test's event loop.

    From its set-up to its tear-down the loop's time is virtual: sleeps and timeouts
    return as soon as every task waits, and ``await clock.advance(seconds)`` steps
    time by hand. Options come from ``@pytest.mark.virtual_clock(**options)``. It
    works with every loop scope and runner; it fails the test if the test is not an
    async test.
    """
    assert _aiotestkit_virtual_clock is not None  # the test names it: never None
    return _aiotestkit_virtual_clock


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
    from aiohttp.test_utils import unused_port

    return unused_port
