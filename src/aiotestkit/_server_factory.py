"""Start case-controlled servers for one test and close them all after it."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._http import CaseControlledTestServer

__all__ = ["CaseControlledServerFactory"]


class CaseControlledServerFactory:
    """Starts :class:`aiotestkit.CaseControlledTestServer` instances and owns them.

    ``await factory(**kwargs)`` builds a server with the constructor arguments of
    :class:`~aiotestkit.CaseControlledTestServer`, starts it and returns it.
    :meth:`close` (or leaving ``async with``) closes every server it started, newest
    first, also when the test failed. The ``case_controlled_server_factory`` fixture
    and :class:`aiotestkit.NetworkTestCase` both use it.

    Example:
        >>> async with CaseControlledServerFactory() as start_server:
        ...     api = await start_server(scheme="https")
        ...     auth = await start_server()
    """

    def __init__(self) -> None:
        self._servers: list[CaseControlledTestServer] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} with {len(self._servers)} server(s)>"

    @property
    def servers(self) -> list[CaseControlledTestServer]:
        """The servers started so far, oldest first (a copy)."""
        return list(self._servers)

    async def __call__(self, **kwargs: Any) -> CaseControlledTestServer:
        """Build, start and return a server; it is closed by :meth:`close`.

        Args:
            **kwargs: the arguments of :class:`aiotestkit.CaseControlledTestServer`
                (``scheme``, ``host``, ``port``, ``ssl``, ``certificate_authority``).

        Returns:
            The started server.

        Raises:
            RuntimeError: if the factory is closed already.
            TypeError, ValueError: as the server's constructor raises them.
            OSError: if the server cannot listen (e.g. the port is taken).

        Example:
            >>> server = await case_controlled_server_factory(scheme="https")
        """
        if self._closed:
            raise RuntimeError(
                f"{self!r} is closed: it starts servers only during the test that owns it"
            )
        server = CaseControlledTestServer(**kwargs)
        self._servers.append(server)
        await server.start_server()
        return server

    async def close(self) -> None:
        """Close every server started, newest first. Calling it again does nothing.

        Every server is closed even when closing one of them raises; the first
        error is raised again afterwards.

        Warns:
            aiotestkit.UnansweredRequestsWarning: from each server that still held
                requests, as :meth:`aiotestkit.CaseControlledTestServer.close` warns.
        """
        self._closed = True
        first_error: BaseException | None = None
        while self._servers:
            server = self._servers.pop()
            try:
                await server.close()
            except BaseException as error:  # close the others, then raise the first
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    async def __aenter__(self) -> CaseControlledServerFactory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
