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
    unconfigure,
    wants_sandbox,
)
from ._pytest_asyncio import quiet_unset_fixture_loop_scope
from ._runners import (
    RUNNERS,
    AiohttpRunner,
    AnyioRunner,
    NotCovered,
    PytestAsyncioRunner,
    TestRunnerAdapter,
    runner_for,
)
from ._test_run import (
    TestRun,
    current_test_run,
    finish_test_run,
    require_test_run,
    start_test_run,
    test_run_of,
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
    "current_test_run",
    "finish_test_run",
    "quiet_unset_fixture_loop_scope",
    "require_test_run",
    "run_settings",
    "runner_for",
    "sandbox_options",
    "start_test_run",
    "test_run_of",
    "test_settings",
    "transports_for",
    "unconfigure",
    "wants_sandbox",
]
