"""The pytest front end's internals: its options and markers, and the test-runner adapters.

``aiotestkit.pytest_plugin`` holds only fixtures and hook wiring; what they need to
know about pytest's options and about the runners of async tests (pytest-asyncio,
aiohttp's plugin, anyio's) lives here, on top of the library layers.
"""

from ._options import (
    PYTEST_ADVICE,
    SANDBOX_MARKER,
    add_options,
    configure,
    run_settings,
    sandbox_options,
    test_settings,
    transports_for,
    wants_sandbox,
)
from ._pytest_asyncio import quiet_unset_fixture_loop_scope
from ._runners import (
    RUNNERS,
    AiohttpRunner,
    AnyioRunner,
    NotCovered,
    PytestAsyncioRunner,
    TestRun,
    TestRunnerAdapter,
    runner_for,
)

__all__ = [
    "PYTEST_ADVICE",
    "RUNNERS",
    "SANDBOX_MARKER",
    "AiohttpRunner",
    "AnyioRunner",
    "NotCovered",
    "PytestAsyncioRunner",
    "TestRun",
    "TestRunnerAdapter",
    "add_options",
    "configure",
    "quiet_unset_fixture_loop_scope",
    "run_settings",
    "runner_for",
    "sandbox_options",
    "test_settings",
    "transports_for",
    "wants_sandbox",
]
