"""The markers of a test that aiotestkit reads, found in one pass over its node chain.

pytest's ``item.get_closest_marker(name)`` walks the test's node chain (function,
class, module, packages, session) once per call; aiotestkit reads five markers of
every async test at collection, so it reads them all at once instead, and keeps the
result in the item's stash; what the item's parents contribute is kept in theirs, so
the tests of one module do not walk the same chain again.
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
    absent. The mapping may be shared with other items: do not change it.
    """
    return _closest_of(item)


def _closest_of(node: pytest.Item | pytest.Collector) -> Mapping[str, pytest.Mark]:
    # A node's own markers on top of its parent's closest ones. The parents' are
    # read once per collector, not once per test: the tests of one module (one
    # class) share them.
    try:
        return node.stash[_CLOSEST]
    except KeyError:
        pass
    parent = node.parent
    inherited = _closest_of(parent) if parent is not None else {}
    own = [mark for mark in node.own_markers if mark.name in READ_MARKERS]
    found: Mapping[str, pytest.Mark] = inherited
    if own:
        closest: dict[str, pytest.Mark] = {}
        for mark in own:  # in pytest's order: the first of a name is the closest
            closest.setdefault(mark.name, mark)
        found = {**inherited, **closest}
    node.stash[_CLOSEST] = found
    return found
