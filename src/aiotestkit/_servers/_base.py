"""The core every case-controlled server is built on.

A case-controlled server holds what reaches it (an HTTP request, a stream connection,
a WebSocket connection) until the test takes it with a ``receive_*`` call. The core
owns what the three servers have in common, written once:

- the hand-off queue and the one wait on it (:meth:`CaseControlledServerBase._receive`,
  through :func:`aiotestkit._core.get_within`: the only place a server waits for its
  client);
- what is still unfinished, judged by each server kind (:meth:`_unfinished`);
- :meth:`close`: let the loop deliver what is in flight, list what is unfinished,
  shut the server down (each kind's :meth:`_shutdown` cancels its handlers, closes its
  connections and waits for them), then warn once, at the line of the test;
- the hygiene probe (:meth:`hygiene_issues`), with one report format for every kind;
- a ``repr`` that keeps the address after the server closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import aiohttp

from .._core import DEFAULT_TIMEOUT, check_timeout, get_within, timeout_details
from .._loop import is_attached, register_probe, report_issue
from ..errors import ReceiveTimeout, UnansweredRequestsWarning

__all__ = [
    "CaseControlledConnectionServer",
    "CaseControlledServerBase",
    "HeldConnection",
    "user_stacklevel",
]

H = TypeVar("H")
"""What the server hands to the test: a request or a connection."""

_S = TypeVar("_S", bound="CaseControlledServerBase[Any]")

_SETTLE_ITERATIONS = 20
"""Loop iterations :meth:`CaseControlledServerBase.close` gives clients that left.

A client that gave up (its timeout fired, it was cancelled) closed its socket, but
the server learns it only once the loop has read the end of stream and cancelled the
handler: a few iterations on loopback. Only a close with something unfinished pays.
"""

_LIBRARY_PATHS = tuple(
    str(path) + ("" if path.suffix else "/")
    for path in (
        Path(__file__).resolve().parents[1],  # aiotestkit
        Path(aiohttp.__file__).resolve().parent,
        Path(asyncio.__file__).resolve().parent,
        Path(contextlib.__file__).resolve(),
    )
)


def user_stacklevel() -> int:
    """Return the ``stacklevel`` that makes a warning point at the first line outside libraries.

    Called by the function that calls :func:`warnings.warn`: frames of aiotestkit,
    aiohttp (``async with`` on a test server goes through ``test_utils.py``), asyncio
    and contextlib are skipped, so the warning names the test's own line.
    """
    level = 2
    frame = sys._getframe(1).f_back
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_PATHS):
        frame = frame.f_back
        level += 1
    return level


def _caller_site(stacklevel: int) -> str:
    """``path:line`` of the frame a warning with ``stacklevel`` would name."""
    frame = sys._getframe(stacklevel)
    path = frame.f_code.co_filename
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(path)
        path = path if relative.startswith(os.pardir) else relative
    return f"{path}:{frame.f_lineno}"


class HeldConnection(ABC):
    """A connection a connection server holds for the test: counted, received or not."""

    number: int
    """The connection's position on its server, from 1 (int)."""

    received: bool = False
    """Whether a ``receive_connection*`` call returned it to the test."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """Whether the test ended the connection, or received everything up to its end."""

    @abstractmethod
    def _describe_unfinished(self) -> str:
        """Describe the connection for the report of what was left unfinished."""


class CaseControlledServerBase(ABC, Generic[H]):
    """The base of the case-controlled servers: hand-off, receive, close, leftovers.

    A subclass calls :meth:`_hand_off` for everything that reaches it, calls
    :meth:`_started` once it listens, and implements :meth:`_live_address`,
    :meth:`_unfinished`, :meth:`_describe` and :meth:`_shutdown`. It also has the
    ``started`` and ``closed`` properties (aiohttp's test servers have them).
    """

    _item_name: ClassVar[str]
    """What is handed to the test, for messages: ``"request"``, ``"connection"``, …"""

    _leftover_name: ClassVar[str]
    """What is left at close, for messages: ``"unanswered request(s)"``, …"""

    _leftover_fix: ClassVar[str]
    """How to leave nothing unfinished, for messages."""

    _close_effect: ClassVar[str]
    """What closing did to the clients of unfinished items, for messages."""

    _leftover_warning: ClassVar[type[UnansweredRequestsWarning]] = UnansweredRequestsWarning

    if TYPE_CHECKING:

        @property
        def started(self) -> bool: ...

        @property
        def closed(self) -> bool: ...

        async def start_server(self) -> None: ...

    def _init_handoff(self) -> None:
        self._handoff: asyncio.Queue[H] = asyncio.Queue()
        self._address: str | None = None
        self._closing = False
        self._reports_unclosed = True

    # -- for subclasses ------------------------------------------------------------

    @abstractmethod
    def _live_address(self) -> str:
        """The address as text while the server listens, e.g. ``http://127.0.0.1:8080``."""

    @abstractmethod
    def _unfinished(self) -> list[H]:
        """What the test has not finished yet, oldest first."""

    @abstractmethod
    def _describe(self, item: H) -> str:
        """One unfinished item, for messages."""

    @abstractmethod
    async def _shutdown(self) -> None:
        """Cancel the handlers, close the connections, stop listening; wait for all."""

    def _receive_hint(self) -> str:
        """What a receive timeout suggests; subclasses add what they know."""
        return f"did the client connect to {self._where()}?"

    def _on_received(self, item: H) -> None:
        """Called when a ``receive_*`` call hands ``item`` to the test."""

    def _other_leftovers(self, *, closing: bool) -> list[tuple[str, Warning]]:
        """What else the test left undone, as ``(check, warning)`` pairs; none by default.

        :meth:`close` emits each warning; :meth:`hygiene_issues` reports each message
        under its check while the server is open.
        """
        return []

    def _started(self) -> None:
        """Remember the address and register the hygiene probe; call once listening."""
        self._address = self._live_address()
        register_probe(self)

    def _hand_off(self, item: H) -> None:
        self._handoff.put_nowait(item)

    # -- the shared behaviour --------------------------------------------------------

    def _where(self) -> str:
        if self._address is None:
            return "not started"
        if self.closed or self._closing:
            return f"{self._address} (closed)"
        return self._address

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._where()}>"

    def _check_open(self, action: str) -> None:
        if self.closed or self._closing:
            raise RuntimeError(f"cannot {action}: {self!r} is closed")
        if not self.started:
            raise RuntimeError(
                f"cannot {action}: {self!r} is not started; use 'async with server:' "
                "or 'await server.start_server()'"
            )

    async def _receive(self, timeout: float) -> H:
        """Wait at most ``timeout`` seconds for the next item and hand it to the test."""
        timeout = check_timeout(timeout)
        self._check_open(f"receive a {self._item_name}")
        try:
            item = await get_within(self._handoff, timeout)
        except asyncio.TimeoutError:
            raise ReceiveTimeout(
                f"{self!r} received no {self._item_name} within {timeout:g} s; "
                f"{self._receive_hint()}{timeout_details(timeout)}"
            ) from None
        self._on_received(item)
        return item

    def _receive_nowait(self) -> H:
        try:
            item = self._handoff.get_nowait()
        except asyncio.QueueEmpty:
            raise ReceiveTimeout(
                f"{self!r} has no {self._item_name} waiting to be received"
            ) from None
        self._on_received(item)
        return item

    def _leftover_report(self, items: list[H], *, closing: bool) -> str:
        """The one message for what is left unfinished, at close and at the end of a test."""
        listed = "; ".join(self._describe(item) for item in items)
        state = "closed" if closing else "was still open at the end of the test"
        effect = f" {self._close_effect}." if closing else ""
        return (
            f"<{type(self).__name__} {self._address}> {state} with {len(items)} "
            f"{self._leftover_name}: {listed}.{effect} {self._leftover_fix}"
        )

    def hygiene_issues(self) -> Iterator[tuple[str, str]]:
        """What the server is left with at the end of a test, for the hygiene checks.

        A started server that was not closed is reported as an unclosed resource, and
        what it still holds (unanswered requests, unfinished connections) as
        ``unanswered_requests``, in the format of the warning :meth:`close` emits.
        A closed server reports nothing: its :meth:`close` warned already.

        Returns:
            An iterator of ``(check, message)`` pairs (see
            :class:`aiotestkit.LoopInstrumentation`).

        Example:
            ```python
            assert list(server.hygiene_issues()) == []
            ```
        """
        if not self.started or self.closed or self._closing:
            return
        if self._reports_unclosed:
            yield (
                "unclosed_resources",
                f"{self!r} was never closed; use 'async with' or 'await server.close()'",
            )
        unfinished = self._unfinished()
        if unfinished:
            yield ("unanswered_requests", self._leftover_report(unfinished, closing=False))
        for check, warning in self._other_leftovers(closing=False):
            yield (check, str(warning))

    async def __aenter__(self: _S) -> _S:
        await self.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the server: end what it holds, close its connections, wait for its tasks.

        The clients of what is unfinished see their connections close, as with a
        server that went away. Calling it again does nothing. What the test left
        unfinished is reported to the hygiene checks of the test (check
        ``unanswered_requests``), with the line of the test that closed the server;
        it is warned about only when no check takes the report.

        Warns:
            aiotestkit.UnansweredRequestsWarning: (or its subclass
                :class:`aiotestkit.UnfinishedConnectionsWarning` for connection servers)
                if the test left something unfinished and no hygiene check took the
                report (none attached, or ``unanswered_requests`` off), naming each; it
                points at the line of the test that closed the server.
            aiotestkit.UnusedExpectationsWarning: (HTTP server) for expectations used
                fewer times than declared, and
            aiotestkit.UnexpectedRequestsWarning: for requests that matched none and
                that the test never received, where no hygiene checks run; where they
                run, these go to the test's hygiene report (checks
                ``unused_expectations``, ``unexpected_requests``), whose modes and
                ``hygiene(allow=...)`` decide.

        Example:
            ```python
            await server.close()
            ```
        """
        if self.closed or self._closing:
            return
        self._closing = True
        unfinished = self._unfinished()
        for _ in range(_SETTLE_ITERATIONS):
            if not unfinished:
                break
            await asyncio.sleep(0)  # let the loop see the clients that left
            unfinished = self._unfinished()
        report = self._leftover_report(unfinished, closing=True) if unfinished else None
        others = self._other_leftovers(closing=True)
        await self._shutdown()
        if report is not None:
            level = user_stacklevel()
            # Into the test's hygiene report when a check takes it; a warning otherwise.
            if not report_issue("unanswered_requests", f"{report} (at {_caller_site(level)})"):
                warnings.warn(self._leftover_warning(report), stacklevel=level)
        for check, warning in others:
            level = user_stacklevel()
            if is_attached():  # the check's mode decides, hygiene(allow=...) included
                site = _caller_site(level)
                # A server closed by a fixture's teardown (the sandbox's): no user line.
                runner = any(f"{os.sep}{name}{os.sep}" in site for name in ("_pytest", "pluggy"))
                where = "" if runner else f" (at {site})"
                report_issue(check, f"{warning}{where}")
            else:
                warnings.warn(warning, stacklevel=level)


C = TypeVar("C", bound=HeldConnection)


class CaseControlledConnectionServer(CaseControlledServerBase[C]):
    """The base of the servers that hand connections to the test (stream, WebSocket).

    A connection is unfinished until the test ended it or received everything up to
    its end (:attr:`HeldConnection.finished`).
    """

    _item_name = "connection"

    def _init_handoff(self) -> None:
        super()._init_handoff()
        self._connections: list[C] = []

    @property
    def connections(self) -> list[C]:
        """Every connection that reached the server, oldest first, received by the test or not.

        Example:
            ```python
            assert all(connection.finished for connection in server.connections)
            ```
        """
        return list(self._connections)

    def _hand_off(self, item: C) -> None:
        self._connections.append(item)
        super()._hand_off(item)

    def _on_received(self, item: C) -> None:
        item.received = True

    def _unfinished(self) -> list[C]:
        return [c for c in self._connections if not c.finished]

    def _describe(self, item: C) -> str:
        return item._describe_unfinished()

    def _receive_hint(self) -> str:
        return (
            f"{len(self._connections)} connection(s) received before; did the client "
            f"connect to {self._where()}?"
        )

    async def receive_connection(self, *, timeout: float = DEFAULT_TIMEOUT) -> C:
        """Wait for the next client connection and return it.

        Args:
            timeout: how long to wait, in seconds (float, > 0; keyword-only).

        Returns:
            The connection (:class:`aiotestkit.StreamConnection` or
            :class:`aiotestkit.WebSocketConnection`), in the order clients connected.
            A TLS stream connection has done its handshake; a WebSocket client waits in
            its handshake until the test accepts or refuses.

        Raises:
            aiotestkit.ReceiveTimeout: (a :class:`TimeoutError`) if no client connected
                within ``timeout`` seconds.
            RuntimeError: if the server is not started or closed.
            TypeError, ValueError: if ``timeout`` is not a positive number.

        Example:
            ```python
            connection = await server.receive_connection(timeout=1.0)
            ```
        """
        return await self._receive(timeout)

    def receive_connection_nowait(self) -> C:
        """Return the next client connection that arrived, without waiting.

        Returns:
            The oldest connection not returned by a ``receive_connection*`` call yet.

        Raises:
            aiotestkit.ReceiveTimeout: if no connection is waiting.

        Example:
            ```python
            connection = server.receive_connection_nowait()
            ```
        """
        return self._receive_nowait()
