"""The markers of a test that aiotestkit reads, found in one pass over its node chain.

pytest's ``item.get_closest_marker(name)`` walks the test's node chain (function,
class, module, packages, session) once per call; aiotestkit reads five markers of
every async test at collection, so it reads them all in one walk instead, and keeps
the result in the item's stash.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

__all__ = ["READ_MARKERS", "closest_markers"]

READ_MARKERS = frozenset(
    {"asyncio", "hang_timeout", "hygiene", "network_sandbox", "virtual_clock"}
)
"""The markers read through :func:`closest_markers`: aiotestkit's own, and pytest-asyncio's."""

_CLOSEST = pytest.StashKey[Mapping[str, pytest.Mark]]()


def closest_markers(item: pytest.Item) -> Mapping[str, pytest.Mark]:
    """The closest marker of each name in :data:`READ_MARKERS` that ``item`` has.

    What ``item.get_closest_marker(name)`` returns for each name (the marker nearest
    the test function), read once per item; names the item is not marked with are
    absent.
    """
    try:
        return item.stash[_CLOSEST]
    except KeyError:
        pass
    found: dict[str, pytest.Mark] = {}
    for mark in item.iter_markers():  # closest first
        if mark.name in READ_MARKERS and mark.name not in found:
            found[mark.name] = mark
    item.stash[_CLOSEST] = found
    return found
