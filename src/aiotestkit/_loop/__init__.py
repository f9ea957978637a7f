"""The loop layer: instrumentation, hygiene checks, the hang guard and virtual time.

It builds on ``_core`` and knows nothing of the servers or the network above it.
The settings and the hygiene report are imported with the package; the
instrumentation, the hang guard and :class:`VirtualClock` when first used
(:pep:`562`), so that reading the options of a run of sync tests imports none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._hygiene import (
    CHECKS,
    DEFAULT_HANG_TIMEOUT,
    LIBRARY_ADVICE,
    MODES,
    Advice,
    HygieneIssue,
    HygieneReport,
    LateIssue,
    resolve_modes,
)
from ._settings import GC_OPTIONS, TestSettings, parse_timeout

if TYPE_CHECKING:
    from ._clock import VirtualClock
    from ._guarded_call import hang_guarded
    from ._instrumentation import (
        HygieneProbe,
        LoopExtension,
        LoopInstrumentation,
        is_attached,
        register_probe,
        report_issue,
    )

__all__ = [
    "CHECKS",
    "DEFAULT_HANG_TIMEOUT",
    "GC_OPTIONS",
    "LIBRARY_ADVICE",
    "MODES",
    "Advice",
    "HygieneIssue",
    "HygieneProbe",
    "HygieneReport",
    "LateIssue",
    "LoopExtension",
    "LoopInstrumentation",
    "TestSettings",
    "VirtualClock",
    "hang_guarded",
    "is_attached",
    "parse_timeout",
    "register_probe",
    "report_issue",
    "resolve_modes",
]


_LAZY = {
    "VirtualClock": "._clock",
    "hang_guarded": "._guarded_call",
    "HygieneProbe": "._instrumentation",
    "LoopExtension": "._instrumentation",
    "LoopInstrumentation": "._instrumentation",
    "is_attached": "._instrumentation",
    "register_probe": "._instrumentation",
    "report_issue": "._instrumentation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
