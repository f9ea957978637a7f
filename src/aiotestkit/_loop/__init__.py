"""The loop layer: instrumentation, hygiene checks, the hang guard and virtual time.

It builds on ``_core`` and knows nothing of the servers or the network above it.
"""

from ._clock import VirtualClock
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
