"""unittest base classes with the facilities of aiotestkit's pytest fixtures.

:class:`NetworkTestCase` gives a :class:`unittest.IsolatedAsyncioTestCase` the same
things the fixtures give a pytest test, as attributes named like the fixtures, made
and closed by the same library objects. :class:`NetworkAioHTTPTestCase` adds them to
aiohttp's :class:`~aiohttp.test_utils.AioHTTPTestCase`. Both run under
``python -m unittest`` and under pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
import sys
import unittest
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TypeVar

import aiohttp
import trustme
from aiohttp import web
from aiohttp.test_utils import AioHTTPTestCase, TestClient, TestServer, unused_port

from ._core import CertificateAuthority, default_certificate_authority
from ._loop import (
    DEFAULT_HANG_TIMEOUT,
    Advice,
    LoopInstrumentation,
    TestSettings,
    VirtualClock,
    hang_guarded,
)
from ._network import AiohttpRedirector, NetworkSandbox
from ._servers import (
    CaseControlledServerFactory,
    CaseControlledStreamServer,
    CaseControlledTestServer,
    CaseControlledWebSocketServer,
)

__all__ = ["NetworkAioHTTPTestCase", "NetworkTestCase"]

_T = TypeVar("_T")


class NetworkTestCase(unittest.IsolatedAsyncioTestCase):
    """An :class:`unittest.IsolatedAsyncioTestCase` with aiotestkit's fixtures as attributes.

    Each attribute is what the pytest fixture of the same name gives, made by the
    same library object:

    * ``tls_certificate_authority``: the shared test CA
      (:func:`aiotestkit.default_certificate_authority`);
    * ``tls_certificate``: its leaf certificate for ``localhost``, ``127.0.0.1``
      and ``::1``;
    * ``ssl_ctx`` / ``client_ssl_ctx``: server and client
      :class:`ssl.SSLContext` of the test CA (made on first use);
    * ``aiohttp_redirector``: an open :class:`aiotestkit.AiohttpRedirector`;
    * ``case_controlled_server_factory``, ``case_controlled_stream_server_factory``,
      ``case_controlled_websocket_server_factory``: each a
      :class:`aiotestkit.CaseControlledServerFactory`;
      ``await self.case_controlled_server_factory(scheme="https")`` starts a
      server that is closed after the test;
    * ``aiohttp_unused_port``: :func:`aiohttp.test_utils.unused_port` (prefer a
      bound socket, see the fixture's documentation);
    * ``network_sandbox``: an open :class:`aiotestkit.NetworkSandbox` (class
      attribute ``use_network_sandbox = False`` turns it off); refused connections
      fail the test unless ``allow_blocked = True``;
    * ``clock``: a :class:`aiotestkit.VirtualClock` on the test's loop, with
      ``use_virtual_clock = True`` (off by default, as the fixture is opt-in);
    * ``loop_instrumentation``: the :class:`aiotestkit.LoopInstrumentation` whose
      hygiene checks run after everything else closed; a problem fails the test
      with :class:`aiotestkit.HygieneError`. ``hygiene_checks`` on the class sets
      their modes (``"strict"`` by default; e.g. ``{"unretrieved_exceptions": "off"}``).
      The hang guard cancels a test method still running after ``hang_timeout``
      seconds (60 by default, ``None``: no limit) and fails it with
      :class:`aiotestkit.HangTimeout`, on Python 3.11 and later (3.10's
      ``IsolatedAsyncioTestCase`` runs every test in one shared task, which the guard
      cannot cancel alone).

    Everything is set up in :meth:`asyncSetUp` and closed by cleanups that run
    after :meth:`asyncTearDown`, in reverse order, also when the test or its
    set-up failed. A subclass that overrides ``asyncSetUp`` must ``await
    super().asyncSetUp()`` first.

    Example:
        ```python
        class TestKraken(NetworkTestCase):
            async def test_time(self):
                server = await self.case_controlled_server_factory(scheme="https")
                self.aiohttp_redirector.add_server("api.kraken.com", 443, server)
                task = asyncio.create_task(get_time(self.aiohttp_redirector.session))
                request = await server.receive_request()
                server.send_json(request, {"error": [], "result": {"unixtime": 1}})
                self.assertEqual(await task, 1)
        ```
    """

    use_network_sandbox: bool = True
    """Run each test in a :class:`aiotestkit.NetworkSandbox` (``self.network_sandbox``)."""
    allow_blocked: bool = False
    """Let refused connections pass; by default they fail the test after tear-down."""
    use_virtual_clock: bool = False
    """Run each test in virtual time (``self.clock``, made by :meth:`make_virtual_clock`)."""

    hygiene_checks: str | Mapping[str, str] = "strict"
    """Modes of the hygiene checks (``strict``, ``warn``, ``off``), for all or by check name."""
    hang_timeout: float | None = DEFAULT_HANG_TIMEOUT
    """Seconds a test method may run before the hang guard cancels it; ``None``: no limit."""

    _loop_instrumentation: LoopInstrumentation | None = None
    _network_sandbox: NetworkSandbox | None = None
    _clock: VirtualClock | None = None
    _aiohttp_redirector: AiohttpRedirector | None = None
    _case_controlled_server_factory: (
        CaseControlledServerFactory[CaseControlledTestServer] | None
    ) = None
    _case_controlled_stream_server_factory: (
        CaseControlledServerFactory[CaseControlledStreamServer] | None
    ) = None
    _case_controlled_websocket_server_factory: (
        CaseControlledServerFactory[CaseControlledWebSocketServer] | None
    ) = None

    def _set_up(self, name: str, value: _T | None) -> _T:
        if value is None:
            raise RuntimeError(
                f"self.{name} is not set up: {type(self).__name__}.asyncSetUp() did not run "
                "NetworkTestCase.asyncSetUp(); an asyncSetUp() override must start with "
                "'await super().asyncSetUp()'"
            )
        return value

    @property
    def network_sandbox(self) -> NetworkSandbox:
        """The test's open :class:`aiotestkit.NetworkSandbox`, as the fixture of the same name.

        Route hosts with ``await self.network_sandbox.route(host, port, server)``.
        After the test, refused connections fail it
        (:meth:`~aiotestkit.NetworkSandbox.assert_nothing_blocked`) unless declared
        with ``expect_blocked()`` or the class sets ``allow_blocked = True``.

        Raises:
            RuntimeError: if :meth:`asyncSetUp` of this class did not run, or the
                class sets ``use_network_sandbox = False``.
        """
        if not self.use_network_sandbox:
            raise RuntimeError(
                f"{type(self).__name__} sets use_network_sandbox = False, so it has no "
                "self.network_sandbox; remove that line to sandbox its tests"
            )
        return self._set_up("network_sandbox", self._network_sandbox)

    @property
    def clock(self) -> VirtualClock:
        """The :class:`aiotestkit.VirtualClock` attached to the test's loop, as the fixture.

        Raises:
            RuntimeError: if the class does not set ``use_virtual_clock = True``, or
                :meth:`asyncSetUp` of this class did not run.
        """
        if not self.use_virtual_clock:
            raise RuntimeError(
                f"{type(self).__name__} runs in real time: set use_virtual_clock = True "
                "on the class to get self.clock"
            )
        return self._set_up("clock", self._clock)

    @property
    def loop_instrumentation(self) -> LoopInstrumentation:
        """The :class:`aiotestkit.LoopInstrumentation` checking this test, as the fixture.

        Raises:
            RuntimeError: if :meth:`asyncSetUp` of this class did not run.
        """
        return self._set_up("loop_instrumentation", self._loop_instrumentation)

    def make_virtual_clock(self) -> VirtualClock:
        """Return the clock for ``use_virtual_clock``; override it to pass options.

        Example:
            ```python
            def make_virtual_clock(self):
                return VirtualClock(autojump_threshold=0.01)
            ```
        """
        return VirtualClock()

    @property
    def aiohttp_redirector(self) -> AiohttpRedirector:
        """The open :class:`aiotestkit.AiohttpRedirector`, as the fixture of the same name.

        Raises:
            RuntimeError: if :meth:`asyncSetUp` of this class did not run.
        """
        return self._set_up("aiohttp_redirector", self._aiohttp_redirector)

    @property
    def case_controlled_server_factory(
        self,
    ) -> CaseControlledServerFactory[CaseControlledTestServer]:
        """Starts :class:`aiotestkit.CaseControlledTestServer` instances, as the fixture.

        ``await self.case_controlled_server_factory(**kwargs)`` starts a server,
        closed after the test.

        Raises:
            RuntimeError: if :meth:`asyncSetUp` of this class did not run.
        """
        return self._set_up("case_controlled_server_factory", self._case_controlled_server_factory)

    @property
    def case_controlled_stream_server_factory(
        self,
    ) -> CaseControlledServerFactory[CaseControlledStreamServer]:
        """Starts :class:`aiotestkit.CaseControlledStreamServer` instances, as the fixture.

        ``await self.case_controlled_stream_server_factory(transport="tls")``.

        Raises:
            RuntimeError: if :meth:`asyncSetUp` of this class did not run.
        """
        return self._set_up(
            "case_controlled_stream_server_factory", self._case_controlled_stream_server_factory
        )

    @property
    def case_controlled_websocket_server_factory(
        self,
    ) -> CaseControlledServerFactory[CaseControlledWebSocketServer]:
        """Starts :class:`aiotestkit.CaseControlledWebSocketServer` instances, as the fixture.

        ``await self.case_controlled_websocket_server_factory(scheme="https")``.

        Raises:
            RuntimeError: if :meth:`asyncSetUp` of this class did not run.
        """
        return self._set_up(
            "case_controlled_websocket_server_factory",
            self._case_controlled_websocket_server_factory,
        )

    @cached_property
    def tls_certificate_authority(self) -> CertificateAuthority:
        """The test certificate authority, as the fixture of the same name."""
        return default_certificate_authority()

    @cached_property
    def tls_certificate(self) -> trustme.LeafCert:
        """A certificate for ``localhost``, ``127.0.0.1`` and ``::1`` from the test CA."""
        return self.tls_certificate_authority.leaf_certificate()

    @cached_property
    def ssl_ctx(self) -> ssl.SSLContext:
        """A server :class:`ssl.SSLContext` presenting :attr:`tls_certificate`."""
        return self.tls_certificate_authority.server_context()

    @cached_property
    def client_ssl_ctx(self) -> ssl.SSLContext:
        """A client :class:`ssl.SSLContext` trusting the test CA, host names verified."""
        return self.tls_certificate_authority.client_context()

    @property
    def aiohttp_unused_port(self) -> Callable[[], int]:
        """:func:`aiohttp.test_utils.unused_port`, as the fixture of the same name."""
        return unused_port

    async def asyncSetUp(self) -> None:
        """Open the test's network resources; override it with ``await super().asyncSetUp()``.

        The resources are closed by a cleanup (:meth:`addAsyncCleanup`) registered
        here, so they are closed after :meth:`asyncTearDown`, and also when a later
        part of the set-up fails.

        Example:
            ```python
            class TestClient(NetworkTestCase):
                async def asyncSetUp(self) -> None:
                    await super().asyncSetUp()
                    self.server = await self.case_controlled_server_factory()
            ```
        """
        resources = contextlib.AsyncExitStack()
        self.addAsyncCleanup(resources.aclose)
        await self._enter_network_resources(resources)
        await super().asyncSetUp()

    @classmethod
    def _settings(cls) -> TestSettings:
        """The class attributes, checked by the code that checks the pytest options."""
        name = cls.__name__
        modes = cls.hygiene_checks
        return TestSettings.from_options(
            hygiene=modes if isinstance(modes, str) else "strict",
            hygiene_checks={} if isinstance(modes, str) else modes,
            hang_timeout=cls.hang_timeout,
            virtual_clock=cls.use_virtual_clock,
            network_sandbox=cls.use_network_sandbox,
            advice=Advice(
                allow_checks="A known problem can be allowed for the tests of "
                f"{name} with the class attribute hygiene_checks = {{checks_off}}.",
                hang_timeout=f"hang_timeout = seconds on {name} (None turns the guard off)",
                allow_blocked=f"allow_blocked = True on {name}",
            ),
            names={
                "hygiene": f"{name}.hygiene_checks",
                "hygiene_checks": "hygiene_checks",
                "hang_timeout": f"{name}.hang_timeout",
            },
        )

    async def _enter_network_resources(self, resources: contextlib.AsyncExitStack) -> None:
        # Entered in this order, closed in the reverse one: the checks that must see
        # everything closed come first, the resources that live inside them after.
        loop = asyncio.get_running_loop()
        instrumentation = self._settings().instrumentation(self.id())
        instrumentation.attach(loop)
        self._loop_instrumentation = instrumentation
        resources.push_async_callback(self._check_hygiene, instrumentation)
        if self.use_virtual_clock:
            clock = self.make_virtual_clock()
            clock.attach(loop)
            # A sync cleanup runs outside the loop (before the resources close): a
            # detach inside a loop step would show asyncio's debug mode a step of
            # virtual hours ("Executing <Task ...> took 3600 seconds").
            self.addCleanup(clock.detach, loop)
            self._clock = clock
        if self.use_network_sandbox:
            sandbox = NetworkSandbox(
                certificate_authority=self.tls_certificate_authority,
                allow_blocked=self.allow_blocked,
            )
            # Unless allow_blocked, it reports refusals to the hygiene checks when it
            # closes (check refused_connections), as under the network_sandbox fixture.
            self._network_sandbox = await resources.enter_async_context(sandbox)
        self._aiohttp_redirector = await resources.enter_async_context(
            AiohttpRedirector(certificate_authority=self.tls_certificate_authority)
        )
        self._case_controlled_server_factory = await resources.enter_async_context(
            CaseControlledServerFactory(CaseControlledTestServer)
        )
        self._case_controlled_stream_server_factory = await resources.enter_async_context(
            CaseControlledServerFactory(CaseControlledStreamServer)
        )
        self._case_controlled_websocket_server_factory = await resources.enter_async_context(
            CaseControlledServerFactory(CaseControlledWebSocketServer)
        )

    async def _check_hygiene(self, instrumentation: LoopInstrumentation) -> None:
        await instrumentation.finish()
        instrumentation.check()

    def _callTestMethod(self, method: Callable[[], object]) -> None:
        # unittest's one hook around the test method alone: the hang guard watches the
        # task it runs in (one task per call since Python 3.11).
        instrumentation = self._loop_instrumentation
        if (
            instrumentation is not None
            and sys.version_info >= (3, 11)
            and inspect.iscoroutinefunction(method)
        ):
            method = hang_guarded(method, instrumentation)
        super()._callTestMethod(method)  # type: ignore[misc]


class NetworkAioHTTPTestCase(NetworkTestCase, AioHTTPTestCase):
    """aiohttp's ``AioHTTPTestCase`` with the attributes of :class:`NetworkTestCase`.

    Override :meth:`get_application` as with ``AioHTTPTestCase``; ``self.client``,
    ``self.server`` and ``self.app`` are there as usual. The network resources are
    opened before the application is made, so ``get_application`` may use them, and
    closed after ``self.client``.

    Set ``use_tls = True`` on the class to serve the application over HTTPS with
    :attr:`ssl_ctx`; ``self.client`` then trusts the test CA (:attr:`client_ssl_ctx`)
    and verifies the certificate, as a real client would.

    Example:
        ```python
        class TestHello(NetworkAioHTTPTestCase):
            use_tls = True

            async def get_application(self):
                app = web.Application()
                app.router.add_get("/", hello)
                return app

            async def test_hello(self):
                async with self.client.get("/") as response:
                    self.assertEqual(response.url.scheme, "https")
        ```
    """

    use_tls: bool = False
    """Serve the application over HTTPS with the test CA's certificate."""

    async def get_server(self, app: web.Application) -> TestServer:
        """Return the test server, started over TLS when :attr:`use_tls` is set.

        Args:
            app: the application under test (from :meth:`get_application`).

        Returns:
            The started :class:`aiohttp.test_utils.TestServer`.

        Example:
            ```python
            server = await self.get_server(web.Application())
            ```
        """
        server = await super().get_server(app)
        if self.use_tls:
            await server.start_server(ssl=self.ssl_ctx)
        return server

    async def get_client(self, server: TestServer) -> TestClient[web.Request, web.Application]:
        """Return the test client, trusting the test CA when :attr:`use_tls` is set.

        Args:
            server: the server from :meth:`get_server`.

        Returns:
            A :class:`aiohttp.test_utils.TestClient` for ``server``.

        Example:
            ```python
            client = await self.get_client(server)
            ```
        """
        if not self.use_tls:
            return await super().get_client(server)
        connector = aiohttp.TCPConnector(ssl=self.client_ssl_ctx)
        return TestClient(server, loop=self.loop, connector=connector)
