"""The loop layer: instrumentation, hygiene checks, the hang guard and virtual time.

It builds on ``_core`` and knows nothing of the servers or the network above it.
"""

from ._clock import VirtualClock
from ._hang_guard import DEFAULT_HANG_TIMEOUT
from ._hygiene import CHECKS, MODES, HygieneIssue, HygieneReport, LateIssue, resolve_modes
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
    "MODES",
    "HygieneIssue",
    "HygieneProbe",
    "HygieneReport",
    "LateIssue",
    "LoopExtension",
    "LoopInstrumentation",
    "VirtualClock",
    "is_attached",
    "register_probe",
    "report_issue",
    "resolve_modes",
]
