"""A Griffe extension: Sphinx roles in the docstrings, rendered as Markdown.

The docstrings are read by Python users in ``help()`` and IDEs too, where
``:class:`aiotestkit.VirtualClock``` is the familiar spelling. On the site,
``:role:`aiotestkit.X``` becomes a cross-reference to the documented object
(checked: ``mkdocs build --strict`` fails on a target that is not documented),
and any other role target (the standard library, aiohttp, trustme) a code span.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj):`(~?)([^`<>]+)`")


def _replace(match: re.Match[str]) -> str:
    short, target = match.group(1) == "~", match.group(2).strip()
    shown = target.rsplit(".", 1)[-1] if short else target
    if target.startswith("aiotestkit.") and not any(
        part.startswith("_") for part in target.split(".")
    ):
        return f"[`{shown}`][{target}]"
    return f"`{shown}`"


class RstRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring before it is rendered."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of ``obj``, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_replace, obj.docstring.value)
