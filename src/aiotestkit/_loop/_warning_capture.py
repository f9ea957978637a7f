"""Warning capture: the warnings that hygiene checks turn into issues, with their source.

Python reports two kinds of leaks as warnings: ``ResourceWarning`` when a socket,
transport, event loop or aiohttp session is finalized unclosed, and a
``RuntimeWarning`` when a coroutine is finalized without being awaited. Both carry
the finalized object as the warning's ``source``, which is what :mod:`._ownership`
needs to blame the test that created it. :class:`WarningCapture` puts filters that
show these warnings ahead of every other filter (so ``filterwarnings = error`` or
``ignore`` does not hide them) and hands each one, with its source, to a handler;
every other warning goes where it went before.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Collection
from types import FrameType
from typing import Any, TextIO

__all__ = ["WarningCapture"]

_FILTERS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    (
        "unawaited_coroutines",
        ("always", re.compile(r"coroutine .* was never awaited", re.I), RuntimeWarning, None, 0),
    ),
    ("unclosed_resources", ("always", None, ResourceWarning, None, 0)),
)
"""The warnings filters each check adds, in the form of ``warnings.filters`` entries."""

Handler = Callable[[str, warnings.WarningMessage, object], bool]
"""Takes ``(check, warning, finalized object or None)``; returns False to let the warning
go where it went before."""


def check_of(message: Warning | str, category: type[Warning]) -> str | None:
    """The hygiene check a warning belongs to, or ``None``."""
    if issubclass(category, ResourceWarning):
        return "unclosed_resources"
    if issubclass(category, RuntimeWarning) and "was never awaited" in str(message):
        return "unawaited_coroutines"
    return None


def _finalized_object(message: warnings.WarningMessage) -> object:
    """The warning's source or, for a finalizer that gave none, the ``self`` of its ``__del__``.

    Only called for the warnings of hygiene checks, never on a hot path: asyncio's
    ``StreamWriter`` and SSL transport warn without a source on some Pythons.
    """
    if message.source is not None:
        return message.source
    frame: FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            break
        if frame.f_code.co_name == "__del__":
            return frame.f_locals.get("self")
        frame = frame.f_back
    return None


def _insert_filters(filters: list[tuple[Any, ...]]) -> None:
    """Put ``filters`` first in ``warnings.filters`` (inside a ``catch_warnings``)."""
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is None or not isinstance(warnings.filters, list):
        # No fast path on this Python: use the public API.
        for action, message, category, _, _ in reversed(filters):
            warnings.filterwarnings(action, message.pattern if message else "", category)
        return
    warnings.filters[:0] = filters
    mutated()


class WarningCapture:
    """Hands the warnings of ``checks`` to ``handler`` between :meth:`start` and :meth:`stop`.

    Python calls ``warnings._showwarnmsg`` with the whole warning message, its
    ``source`` included; where that hook does not exist, ``warnings.showwarning`` is
    replaced instead and the source is ``None``.

    Args:
        checks: the checks whose warnings are captured (``unclosed_resources``,
            ``unawaited_coroutines``); other names are ignored.
        handler: called as ``handler(check, warning_message, finalized_object)``.
    """

    def __init__(self, checks: Collection[str], handler: Handler) -> None:
        self._checks = frozenset(checks)
        self._handler = handler
        self._catcher: warnings.catch_warnings[None] | None = None
        self._previous_showwarnmsg: Callable[[warnings.WarningMessage], None] | None = None
        self._previous_showwarning: Callable[..., None] | None = None
        self._outer: tuple[object, object] = (None, None)

    def start(self) -> None:
        """Install the filters and the hook (inside a ``warnings.catch_warnings``)."""
        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        previous = getattr(warnings, "_showwarnmsg", None)
        if callable(previous):
            self._previous_showwarnmsg = previous
            warnings._showwarnmsg = self._showwarnmsg  # type: ignore[attr-defined]
        else:
            self._previous_showwarning = warnings.showwarning
            warnings.showwarning = self._showwarning
        filters = [entry for check, entry in _FILTERS if check in self._checks]
        if filters:
            _insert_filters(filters)
        self._outer = self._recorders()

    @staticmethod
    def _recorders() -> tuple[object, object]:
        return warnings.showwarning, getattr(warnings, "_showwarnmsg_impl", None)

    def stop(self) -> None:
        """Remove the hook and the filters."""
        if self._previous_showwarnmsg is not None:
            warnings._showwarnmsg = self._previous_showwarnmsg  # type: ignore[attr-defined]
            self._previous_showwarnmsg = None
        catcher, self._catcher = self._catcher, None
        if catcher is not None:
            catcher.__exit__(None, None, None)  # restores showwarning and the filters

    def _showwarnmsg(self, message: warnings.WarningMessage) -> None:
        check = check_of(message.message, message.category)
        if (
            check is None
            or check not in self._checks
            # A catch_warnings(record=True) entered since (pytest.warns) expects it.
            or self._recorders() != self._outer
            or not self._handler(check, message, _finalized_object(message))
        ):
            assert self._previous_showwarnmsg is not None
            self._previous_showwarnmsg(message)

    def _showwarning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        check = check_of(message, category)
        warning = warnings.WarningMessage(message, category, filename, lineno, file, line)
        if (
            check is None
            or check not in self._checks
            or not self._handler(check, warning, _finalized_object(warning))
        ):
            assert self._previous_showwarning is not None
            self._previous_showwarning(message, category, filename, lineno, file, line)
