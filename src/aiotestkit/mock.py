"""Async mock helpers, built on :mod:`unittest.mock`.

Everything here returns the standard library's own mock objects
(:class:`unittest.mock.AsyncMock`, :class:`unittest.mock.MagicMock`), configured for
the shapes asyncio code awaits: coroutine functions, async context managers, async
iterators, and aiohttp-style objects that are awaitable *and* async context managers.
Their ``assert_*`` methods, ``call_args_list`` and ``await_args_list`` work as usual.

Example:
    ```python
    from aiotestkit.mock import async_patch
    @async_patch("async_receive.send_to_client")
    async def test_ping(send_to_client):
        await receive("PING", "data")
        send_to_client.assert_awaited_once_with("PONG", "data")
    ```
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar
from unittest import mock

from .errors import MockNotAwaited

__all__ = [
    "AsyncPatch",
    "AwaitableContextMock",
    "assert_all_awaited",
    "async_context_mock",
    "async_iterator_mock",
    "async_patch",
    "async_patch_object",
    "awaitable_context_mock",
]

_F = TypeVar("_F", bound=Callable[..., Any])

_REFUSED_PATCH_ARGUMENTS = {
    "new": "with 'new' the patcher passes no mock to the test; use unittest.mock.patch",
    "new_callable": "async_patch always makes an AsyncMock; use unittest.mock.patch",
    "autospec": (
        "autospec makes a function, not an AsyncMock; pass spec=<the real object> to "
        "restrict attributes, or use unittest.mock.patch(..., autospec=True)"
    ),
}


def _check_patch_arguments(function: str, kwargs: dict[str, Any]) -> None:
    for name, why in _REFUSED_PATCH_ARGUMENTS.items():
        if name in kwargs:
            raise TypeError(f"{function}() does not take {name!r}: {why}")


class AsyncPatch:
    """A patcher that replaces its target with a :class:`unittest.mock.AsyncMock`.

    Made by :func:`async_patch` and :func:`async_patch_object`; it wraps the
    patcher of :func:`unittest.mock.patch` and behaves exactly like it, plus
    ``async with``:

    * as a decorator of a sync or async function, a test method or a class, it
      passes the mock to the test as an extra positional argument (after ``self``,
      before the arguments of decorators further up). pytest knows these arguments
      are not fixtures, through the ``patchings`` attribute the decorator sets, as
      with ``unittest.mock.patch``; so with pytest the mocks come first in the
      signature and fixtures after them;
    * as a context manager, sync (``with``) or async (``async with``), it yields the
      mock and restores the target on exit, also when the block raises;
    * :meth:`start` and :meth:`stop` as with ``unittest.mock.patch``.

    Example:
        ```python
        async with async_patch("async_receive.trigger_event") as trigger_event:
            trigger_event.return_value = "my response"
            await receive("MESSAGE", "data")
        ```
    """

    def __init__(self, patcher: Any) -> None:
        self._patcher = patcher

    def __repr__(self) -> str:
        target = getattr(self._patcher, "attribute", "?")
        return f"<{type(self).__name__} of {target!r}>"

    def __call__(self, function: _F) -> _F:
        """Decorate ``function`` (or a class): the target is patched while it runs."""
        decorated: _F = self._patcher(function)
        return decorated

    def start(self) -> mock.AsyncMock:
        """Patch the target now and return the mock; undo it with :meth:`stop`."""
        started: mock.AsyncMock = self._patcher.start()
        return started

    def stop(self) -> None:
        """Restore the target patched by :meth:`start`."""
        self._patcher.stop()

    def __enter__(self) -> mock.AsyncMock:
        entered: mock.AsyncMock = self._patcher.__enter__()
        return entered

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._patcher.__exit__(exc_type, exc_value, traceback)

    async def __aenter__(self) -> mock.AsyncMock:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc_value, traceback)


def async_patch(target: str, **kwargs: Any) -> AsyncPatch:
    """Patch ``target`` with an :class:`unittest.mock.AsyncMock` and hand the mock to the test.

    :func:`unittest.mock.patch` with ``new_callable=AsyncMock``: the same lookup
    rules (patch where the name is *used*), the same restoring, the same
    ``patchings`` bookkeeping that pytest reads to tell mock arguments from
    fixtures. Unlike ``patch(target, new=AsyncMock())`` the mock reaches the test
    as an argument, so nothing has to be imported back from the patched module.

    Args:
        target: ``"package.module.name"``, as for :func:`unittest.mock.patch`.
        **kwargs: ``spec``, ``spec_set``, ``create`` as for
            :func:`unittest.mock.patch`; anything else configures the
            :class:`~unittest.mock.AsyncMock` (``return_value``, ``side_effect``,
            ``name``, ``wraps``, ``**{"child.return_value": ...}``); ``name``
            defaults to the last part of ``target``, for messages. The awaited
            call returns ``return_value`` or applies ``side_effect`` (an exception
            is raised, an iterable gives one result per await).

    Returns:
        An :class:`AsyncPatch`: a decorator, a sync or async context manager, or a
        patcher with ``start()``/``stop()``.

    Raises:
        TypeError: if ``new``, ``new_callable`` or ``autospec`` is given: with
            them the result is not an ``AsyncMock`` passed to the test.

    Example:
        ```python
        @async_patch("async_receive.trigger_event", return_value="my response")
        @async_patch("async_receive.send_to_client")
        async def test_message(send_to_client, trigger_event):
            await receive("MESSAGE", "data")
            trigger_event.assert_awaited_once_with("message", "data")
            send_to_client.assert_awaited_once_with("MESSAGE", "my response")
        ```
    """
    _check_patch_arguments("async_patch", kwargs)
    kwargs.setdefault("name", target.rpartition(".")[2])
    return AsyncPatch(mock.patch(target, new_callable=mock.AsyncMock, **kwargs))


def async_patch_object(target: object, attribute: str, **kwargs: Any) -> AsyncPatch:
    """Patch ``attribute`` of the object ``target`` with an :class:`unittest.mock.AsyncMock`.

    The :func:`unittest.mock.patch.object` counterpart of :func:`async_patch`.

    Args:
        target: the object (module, class, instance) whose attribute is replaced.
        attribute: the attribute name (str).
        **kwargs: as for :func:`async_patch`.

    Returns:
        An :class:`AsyncPatch`.

    Raises:
        TypeError: if ``new``, ``new_callable`` or ``autospec`` is given.

    Example:
        ```python
        with async_patch_object(Client, "fetch", return_value=b"{}") as fetch:
            ...
        ```
    """
    _check_patch_arguments("async_patch_object", kwargs)
    kwargs.setdefault("name", attribute)
    return AsyncPatch(mock.patch.object(target, attribute, new_callable=mock.AsyncMock, **kwargs))


class AwaitableContextMock(mock.MagicMock):
    """A :class:`~unittest.mock.MagicMock` that can be awaited *and* used with ``async with``.

    aiohttp's ``session.get(url)`` returns such an object: ``await session.get(url)``
    and ``async with session.get(url) as response`` both give the response. A
    plain :class:`~unittest.mock.AsyncMock` returns a coroutine, which has no
    ``__aenter__``, and a plain ``MagicMock`` cannot be awaited.

    ``await mock`` awaits :attr:`on_await` (an :class:`~unittest.mock.AsyncMock`);
    ``async with mock`` awaits the standard ``__aenter__``/``__aexit__`` mocks.
    :func:`awaitable_context_mock` configures both with one value. Attributes and
    calls give plain ``MagicMock`` children, as ``MagicMock`` does.

    Example:
        ```python
        get = AwaitableContextMock()
        get.on_await.return_value = get.__aenter__.return_value = response
        ```
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_await = mock.AsyncMock()

    def __await__(self) -> Any:
        return self.on_await().__await__()

    def _get_child_mock(self, /, **kwargs: Any) -> mock.NonCallableMock:
        if kwargs.get("_new_name") in ("__aenter__", "__aexit__", "__anext__"):
            return mock.AsyncMock(**kwargs)
        return mock.MagicMock(**kwargs)


def awaitable_context_mock(
    return_value: Any = mock.DEFAULT, *, side_effect: Any = None
) -> AwaitableContextMock:
    """Make an object that ``await`` and ``async with`` both turn into ``return_value``.

    Use it as the return value of a mocked aiohttp-style method, so code that does
    ``async with session.get(url) as response`` and code that does
    ``response = await session.get(url)`` both work.

    Args:
        return_value: what ``await obj`` and ``async with obj as x`` give; by
            default a fresh :class:`~unittest.mock.MagicMock` (the same one for both).
        side_effect: an exception (instance or class) raised by both instead, e.g.
            ``aiohttp.ClientConnectionError()``; or anything
            :attr:`unittest.mock.Mock.side_effect` takes, applied to both.

    Returns:
        An :class:`AwaitableContextMock`. Check it with
        ``obj.on_await.assert_awaited_once()`` or
        ``obj.__aenter__.assert_awaited_once()``; ``__aexit__`` returns ``False``,
        so exceptions raised in the block propagate.

    Example:
        ```python
        session.get.return_value = awaitable_context_mock(response)
        async with session.get("https://api.example.com/") as got:
            assert got is response
        ```
    """
    if return_value is mock.DEFAULT:
        return_value = mock.MagicMock(name="response")
    result = AwaitableContextMock()
    for awaited in (result.on_await, result.__aenter__):
        awaited.return_value = return_value
        awaited.side_effect = side_effect
    return result


def async_context_mock(value: Any = mock.DEFAULT) -> mock.MagicMock:
    """Make an async context manager whose ``async with ... as x`` gives ``value``.

    Args:
        value: what ``__aenter__`` returns; by default the mock itself, as
            ``async with aiohttp.ClientSession() as session`` does.

    Returns:
        A :class:`~unittest.mock.MagicMock` with :class:`~unittest.mock.AsyncMock`
        ``__aenter__`` and ``__aexit__``; ``__aexit__`` returns ``False`` so errors
        in the block propagate. Assert with ``__aenter__.assert_awaited_once()``.

    Example:
        ```python
        connection = async_context_mock(reader)
        async with connection as got:
            assert got is reader
        ```
    """
    result = mock.MagicMock()
    result.__aenter__.return_value = result if value is mock.DEFAULT else value
    return result


def async_iterator_mock(items: Iterable[Any]) -> mock.MagicMock:
    r"""Make an async iterator that yields ``items``, for ``async for``.

    An exception (instance or class) among ``items`` is raised when iteration
    reaches it, e.g. a connection lost halfway through a stream. Like a real async
    generator it is consumed once; after the last item every ``__anext__`` raises
    :class:`StopAsyncIteration`.

    Args:
        items: the values to yield, in order; read once, eagerly.

    Returns:
        A :class:`~unittest.mock.MagicMock` whose ``__aiter__`` returns itself and
        whose ``__anext__`` is an :class:`~unittest.mock.AsyncMock`
        (``__anext__.await_count`` tells how far the code iterated).

    Example:
        ```python
        lines = async_iterator_mock([b"a\n", ConnectionResetError()])
        with pytest.raises(ConnectionResetError):
            [line async for line in lines]  # b"a\n", then the error
        ```
    """
    result = mock.MagicMock()
    # MagicMock's default __aiter__ iterates its return_value without __anext__;
    # return the mock itself instead, so every step awaits (and counts) __anext__.
    result.__aiter__.side_effect = None
    result.__aiter__.return_value = result
    result.__anext__.side_effect = list(items)
    return result


def _named_async_mocks(root: mock.NonCallableMock, label: str) -> list[tuple[str, Any]]:
    """``root`` and the descendants its recorded calls went through, if ``AsyncMock``."""
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def visit(candidate: Any, name: str) -> None:
        if id(candidate) in seen:
            return
        seen.add(id(candidate))
        if isinstance(candidate, mock.AsyncMock):
            found.append((name, candidate))

    visit(root, label)
    for recorded in root.mock_calls:
        path = recorded[0]
        if not path:
            continue
        node: Any = root
        parts = path.replace("()", ".()").split(".")
        walked = label
        for part in parts:
            if not part:
                continue
            if part == "()":
                node = node.return_value
                walked += "()"
            else:
                try:
                    node = getattr(node, part)
                except AttributeError:  # deleted since the call; nothing to check
                    break
                walked += f".{part}"
            visit(node, walked)
    return found


def _multiset_difference(calls: list[Any], awaits: list[Any]) -> list[Any]:
    remaining = collections.Counter(range(len(awaits)))
    missing = []
    for called in calls:
        match = next((i for i in remaining if remaining[i] and awaits[i] == called), None)
        if match is None:
            missing.append(called)
        else:
            remaining[match] -= 1
    return missing


def assert_all_awaited(*mocks: mock.NonCallableMock) -> None:
    """Check that every call of the given async mocks was also awaited.

    Calling an :class:`~unittest.mock.AsyncMock` only makes a coroutine; the call is
    recorded (``call_count``) but the mock runs, and counts an await
    (``await_count``), only when the coroutine is awaited. Code that forgets an
    ``await`` passes ``assert_called_*`` checks while doing nothing. This check
    compares ``call_args_list`` with ``await_args_list`` of each mock given and of
    every ``AsyncMock`` reached through its recorded calls (attributes and return
    values, such as ``client.fetch`` of a ``MagicMock`` client).

    The coroutine such a call made is usually gone already: Python warns
    ``RuntimeWarning: coroutine ... was never awaited`` when it is collected, which
    ``-W error`` or ``filterwarnings = error`` turns into a failure of its own;
    expect it (``pytest.warns(RuntimeWarning)``) in a test that shows the bug.

    Args:
        *mocks: the mocks to check: ``AsyncMock`` instances or mocks with
            ``AsyncMock`` children.

    Raises:
        aiotestkit.MockNotAwaited: (an :class:`AssertionError`) if any call was not
            awaited, naming each mock, its call and await counts and the calls
            never awaited.
        TypeError: if an argument is not a :mod:`unittest.mock` mock.

    Example:
        ```python
        send_to_client = AsyncMock()
        coroutine = send_to_client("PONG", "data")  # no await
        with pytest.raises(MockNotAwaited, match="send_to_client was called 1 time"):
            assert_all_awaited(send_to_client)
        ```
    """
    problems: list[str] = []
    for position, root in enumerate(mocks):
        if not isinstance(root, mock.NonCallableMock):
            raise TypeError(
                f"assert_all_awaited() takes unittest.mock mocks, got {type(root).__name__} "
                f"as argument {position + 1}"
            )
        label = root._extract_mock_name()
        for name, async_mock in _named_async_mocks(root, label):
            missing = _multiset_difference(
                list(async_mock.call_args_list), list(async_mock.await_args_list)
            )
            if missing:
                listed = ", ".join(_format_call(name, called) for called in missing)
                problems.append(
                    f"{name} was called {async_mock.call_count} time(s) but awaited "
                    f"{async_mock.await_count} time(s); never awaited: {listed}"
                )
    if problems:
        raise MockNotAwaited(
            "; ".join(problems) + ". Calling an async function only creates a coroutine: "
            "the code under test is missing an 'await' (or an asyncio.create_task()) "
            "for these calls."
        )


def _format_call(name: str, called: Any) -> str:
    args, kwargs = called
    shown = [repr(arg) for arg in args] + [f"{key}={value!r}" for key, value in kwargs.items()]
    return f"{name}({', '.join(shown)})"
