"""Start case-controlled servers for one test and close them all after it."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["CaseControlledServerFactory"]


class _Server(Protocol):
    async def start_server(self) -> None: ...

    async def close(self) -> None: ...


_S = TypeVar("_S", bound=_Server)


class CaseControlledServerFactory(Generic[_S]):
    """Starts test servers of one class and owns them: closed all together at the end.

    ``await factory(**kwargs)`` builds a ``server_class(**kwargs)``, starts it and
    returns it. :meth:`close` (or leaving ``async with``) closes every server it
    started, newest first, also when the test failed, and also when closing one of
    them raises (a warning turned into an error): the first error is raised after
    all are closed. The ``case_controlled_*server_factory`` fixtures and
    :class:`aiotestkit.NetworkTestCase` all use it.

    Args:
        server_class: the server to build: :class:`aiotestkit.CaseControlledTestServer`,
            :class:`aiotestkit.CaseControlledStreamServer`,
            :class:`aiotestkit.CaseControlledWebSocketServer`, or anything whose
            instances have ``async start_server()`` and ``async close()``.

    Example:
        ```python
        async with CaseControlledServerFactory(CaseControlledTestServer) as start:
            api = await start(scheme="https")
            auth = await start()
        ```
    """

    def __init__(self, server_class: Callable[..., _S]) -> None:
        self.server_class = server_class
        self._servers: list[_S] = []
        self._closed = False

    def __repr__(self) -> str:
        name = getattr(self.server_class, "__name__", repr(self.server_class))
        return f"<{type(self).__name__} of {name}, {len(self._servers)} server(s)>"

    @property
    def servers(self) -> list[_S]:
        """The servers started and not closed yet, oldest first (a copy)."""
        return list(self._servers)

    async def __call__(self, **kwargs: Any) -> _S:
        """Build, start and return a server; it is closed by :meth:`close`.

        Args:
            **kwargs: the arguments of ``server_class`` (for
                :class:`~aiotestkit.CaseControlledTestServer`: ``scheme``, ``host``,
                ``port``, ``ssl``, ``certificate_authority``).

        Returns:
            The started server.

        Raises:
            RuntimeError: if the factory is closed already.
            TypeError, ValueError: as the server's constructor raises them.
            OSError: if the server cannot listen (e.g. the port is taken).

        Example:
            ```python
            server = await case_controlled_server_factory(scheme="https")
            ```
        """
        if self._closed:
            raise RuntimeError(
                f"{self!r} is closed: it starts servers only during the test that owns it"
            )
        server = self.server_class(**kwargs)
        self._servers.append(server)
        await server.start_server()
        return server

    async def close(self) -> None:
        """Close every server started, newest first. Calling it again does nothing.

        Raises:
            Exception: the first error a server's ``close()`` raised, after every
                server was closed.

        Warns:
            aiotestkit.UnansweredRequestsWarning: from each HTTP server that still
                held requests, as :meth:`aiotestkit.CaseControlledTestServer.close` warns.

        Example:
            ```python
            factory = CaseControlledServerFactory(CaseControlledTestServer)
            server = await factory(scheme="https")
            await factory.close()
            ```
        """
        self._closed = True
        first_error: Exception | None = None
        while self._servers:
            server = self._servers.pop()
            try:
                await server.close()
            except Exception as error:  # close the others, then raise the first
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    async def __aenter__(self) -> CaseControlledServerFactory[_S]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
