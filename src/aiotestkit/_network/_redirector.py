"""An aiohttp client session whose every connection goes to the test's own servers."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Protocol, TypeGuard, runtime_checkable

import aiohttp
import trustme

from .._core import default_certificate_authority, shared_client_context
from ._resolver import FakeResolver

__all__ = ["AiohttpRedirector", "StartedServer"]


@runtime_checkable
class StartedServer(Protocol):
    """Anything with the ``host`` and ``port`` it listens on, as aiohttp's test servers."""

    host: str
    port: int | None


def _is_started_server(target: object) -> TypeGuard[StartedServer]:
    """``isinstance(target, StartedServer)``, without the protocol check's cost (~13 µs)."""
    return hasattr(target, "host") and hasattr(target, "port")


class AiohttpRedirector:
    """A :class:`aiohttp.ClientSession` that reaches only the servers the test adds.

    Its connector resolves host names through a :class:`aiotestkit.FakeResolver` and
    trusts the test certificate authority (with verification on), so client code
    that takes an injected session talks to local test servers under the real host
    names, over real TLS, and reaches nothing else.

    Args:
        certificate_authority: the authority the session trusts;
            :func:`aiotestkit.default_certificate_authority` by default.

    Example:
        ```python
        async with AiohttpRedirector() as redirector:
            redirector.add_server("api.kraken.com", 443, server)
            kraken = Kraken(session=redirector.session)
        ```
    """

    def __init__(self, *, certificate_authority: trustme.CA | None = None) -> None:
        self.certificate_authority = certificate_authority or default_certificate_authority()
        self.resolver = FakeResolver()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # opened: the session's loop
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession:
        """The client session to inject into the code under test.

        After :meth:`open_nowait` it is made when first asked for (on the loop
        given there); the same session every time after that.

        Raises:
            RuntimeError: if the redirector was not opened (``async with``,
                :meth:`open` or :meth:`open_nowait`) or is closed.

        Example:
            ```python
            kraken = Kraken(session=redirector.session)
            ```
        """
        if self._session is None and self._loop is not None and not self._closed:
            self._session = self._make_session(self._loop)
        if self._session is None or self._session.closed:
            raise RuntimeError(
                "the redirector's session is not open; use 'async with AiohttpRedirector()' "
                "or the aiohttp_redirector fixture"
            )
        return self._session

    def _make_session(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None  # asked for outside the loop (a synchronous fixture)
        connector = aiohttp.TCPConnector(
            resolver=self.resolver,
            use_dns_cache=False,
            ssl=shared_client_context(self.certificate_authority),
            loop=None if running is loop else loop,
        )
        return aiohttp.ClientSession(connector=connector)

    def add_server(self, host: str, port: int, target: int | StartedServer) -> None:
        """Send the session's connections for ``host:port`` to ``target``.

        Args:
            host: the host name the client uses (str), e.g. ``"api.kraken.com"``.
            port: the port the client uses (int), e.g. 443 for ``https://``.
            target: the local port (int), or a started server with ``host`` and
                ``port`` attributes: every HTTP-speaking server
                (:class:`aiotestkit.CaseControlledTestServer`,
                :class:`aiotestkit.CaseControlledWebSocketServer`, any aiohttp test
                server).

        Raises:
            ValueError: if ``target`` is a server that is not started.
            TypeError: if ``target`` is neither a port nor a server.

        Example:
            ```python
            redirector.add_server("api.kraken.com", 443, server)
            ```
        """
        if isinstance(target, int) and not isinstance(target, bool):
            self.resolver.add(host, port, target)
            return
        if not _is_started_server(target):
            raise TypeError(
                f"target must be a port number or a started server, got {type(target).__name__}"
            )
        if target.port is None:
            raise ValueError(f"{target!r} is not started; start it before adding it")
        self.resolver.add(host, port, target.port, target_host=target.host)

    async def open(self) -> None:
        """Create the session; ``async with`` calls this for you. Needs a running loop.

        Calling it again does nothing.

        Example:
            ```python
            redirector = AiohttpRedirector()
            await redirector.open()
            ```
        """
        if self._loop is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._session = self._make_session(self._loop)

    def open_nowait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the redirector without a running loop: the session is made at first use.

        For a synchronous fixture that holds the test's loop: nothing runs on
        ``loop`` now; :attr:`session` makes the session on it when first asked for.
        Calling it (or :meth:`open`) again does nothing.

        Args:
            loop: the event loop the session will run on (the test's).

        Example:
            ```python
            redirector = AiohttpRedirector()
            redirector.open_nowait(loop)
            loop.run_until_complete(use(redirector.session))
            loop.run_until_complete(redirector.close())
            ```
        """
        if self._loop is None and not self._closed:
            self._loop = loop

    async def close(self) -> None:
        """Close the session and its connections. Calling it again does nothing.

        Example:
            ```python
            await redirector.close()
            ```
        """
        self._closed = True
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> AiohttpRedirector:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
