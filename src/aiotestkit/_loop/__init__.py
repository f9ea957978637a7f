"""The loop layer: instrumentation, hygiene checks, the hang guard and virtual time.

It builds on ``_core`` and knows nothing of the servers or the network above it.
:class:`VirtualClock` is imported when first used (:pep:`562`): most tests never
run one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._guarded_call import hang_guarded
from ._hang_guard import DEFAULT_HANG_TIMEOUT
from ._hygiene import (
    CHECKS,
    LIBRARY_ADVICE,
    MODES,
    Advice,
    HygieneIssue,
    HygieneReport,
    LateIssue,
    resolve_modes,
)
from ._instrumentation import (
    HygieneProbe,
    LoopExtension,
    LoopInstrumentation,
    is_attached,
    register_probe,
    report_issue,
)
from ._settings import GC_OPTIONS, TestSettings, parse_timeout

if TYPE_CHECKING:
    from ._clock import VirtualClock

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


def __getattr__(name: str) -> Any:
    if name != "VirtualClock":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = importlib.import_module("._clock", __name__).VirtualClock
    globals()[name] = value
    return value
