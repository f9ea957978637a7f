"""The plugin's ini options and markers, read into :class:`aiotestkit._loop.TestSettings`.

The values are validated by the library (``TestSettings``, ``select_transports``);
this module only knows where pytest keeps them and how a pytest user changes them
(:data:`PYTEST_ADVICE`, the "how to fix" of every report).
"""

from __future__ import annotations

from typing import Any

import pytest

from .._core import TRANSPORT_NAMES, restore_classes, select_transports
from .._loop import DEFAULT_HANG_TIMEOUT, MODES, Advice, TestSettings
from . import _pytest_asyncio
from ._markers import closest_markers
from ._runners import runner_for

__all__ = [
    "PYTEST_ADVICE",
    "SANDBOX_MARKER",
    "add_options",
    "configure",
    "run_settings",
    "sandbox_options",
    "test_settings",
    "transports_for",
    "wants_sandbox",
]

TRANSPORTS_INI = "aiotestkit_transports"
SANDBOX_INI = "aiotestkit_network_sandbox"
SANDBOX_MARKER = "network_sandbox"

PYTEST_ADVICE = Advice(
    allow_checks="A known problem can be allowed for one test with "
    "@pytest.mark.hygiene(allow={checks}, reason='...'), or for the run with the "
    "ini options aiotestkit_hygiene / aiotestkit_hygiene_checks (strict, warn, off).",
    hang_timeout="@pytest.mark.hang_timeout(seconds) or the ini option "
    "aiotestkit_hang_timeout (0 turns the guard off)",
    allow_blocked="@pytest.mark.network_sandbox(allow_blocked=True)",
)
"""How a pytest user changes the settings: markers and ini options."""

_INI_NAMES = {
    "hygiene": "ini option aiotestkit_hygiene",
    "hygiene_checks": "aiotestkit_hygiene_checks",
    "hang_timeout": "ini option aiotestkit_hang_timeout",
    "gc": "ini option aiotestkit_hygiene_gc",
}
_RUN_SETTINGS = pytest.StashKey[TestSettings]()
_TEST_SETTINGS = pytest.StashKey[TestSettings]()
_SETTINGS_MARKERS = ("hygiene", "hang_timeout", "virtual_clock")

_MARKERS = (
    f"transports(*names): run the test over these transports only "
    f"({', '.join(TRANSPORT_NAMES)}) instead of the {TRANSPORTS_INI} ini option",
    "hygiene(mode=None, *, allow=(), warn=(), reason=None): hygiene checks of this "
    "test: a mode for all checks (strict, warn, off), checks allowed (off) or warned; "
    "allow and off need a reason",
    "hang_timeout(seconds): cancel this async test after so many seconds (0: never)",
    "virtual_clock(enabled=True, **options): run this async test under "
    "aiotestkit.VirtualClock(**options) (autojump, autojump_threshold, "
    "in_flight_timeout, deadlock_timeout, start), as the clock fixture does",
    f"{SANDBOX_MARKER}(enabled=True, allow_blocked=False): run the test in an aiotestkit "
    f"NetworkSandbox (enabled=False: not even with the ini option {SANDBOX_INI}); "
    "allow_blocked=True: refused connections do not fail the test",
    "httpx_mock(assert_all_responses_were_requested=True): options of the "
    "aiotestkit_httpx_mock fixture (and of pytest-httpx's httpx_mock)",
)


def add_options(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> bool:
    """Register the ini options; give pytest-asyncio's fixture loop scope a default.

    Returns:
        True if pytest-asyncio's warning about its unset option must still be
        silenced at configure time (a pytest-asyncio without a default to give).
    """
    parser.addini(
        TRANSPORTS_INI,
        type="args",
        default=list(TRANSPORT_NAMES),
        help="transports the 'transport' fixture runs each test over, by default "
        f"(space-separated, from: {' '.join(TRANSPORT_NAMES)})",
    )
    parser.addini(
        "aiotestkit_hygiene",
        f"hygiene checks of async tests: {', '.join(MODES)} (default strict)",
        default="strict",
    )
    parser.addini(
        "aiotestkit_hygiene_checks",
        "per-check hygiene modes, one 'check=mode' per line",
        type="linelist",
        default=[],
    )
    parser.addini(
        "aiotestkit_hang_timeout",
        f"seconds an async test may run before it is cancelled (default {DEFAULT_HANG_TIMEOUT:g};"
        " 0 turns the hang guard off)",
        default=f"{DEFAULT_HANG_TIMEOUT:g}",
    )
    parser.addini(
        "aiotestkit_hygiene_gc",
        "garbage collection at the end of each async test: young (default), full, off",
        default="young",
    )
    parser.addini(
        "aiotestkit_virtual_clock",
        "run every async test under aiotestkit.VirtualClock, as if it requested the "
        "clock fixture (opt a test out with @pytest.mark.virtual_clock(enabled=False))",
        type="bool",
        default=False,
    )
    parser.addini(
        SANDBOX_INI,
        type="bool",
        default=False,
        help="run every async test in an aiotestkit NetworkSandbox (the network_sandbox "
        "fixture): no connection leaves the test; "
        "@pytest.mark.network_sandbox(enabled=False) turns it off for one test",
    )
    if not pluginmanager.has_plugin("asyncio"):
        return False
    return not _pytest_asyncio.default_fixture_loop_scope(parser)


def configure(config: pytest.Config) -> None:
    """Register the markers and check the ini options once for the run.

    Raises:
        pytest.UsageError: if an ini option is invalid (it names the option).
    """
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    try:
        config.stash[_RUN_SETTINGS] = TestSettings.from_options(
            hygiene=config.getini("aiotestkit_hygiene"),
            hygiene_checks=config.getini("aiotestkit_hygiene_checks"),
            hang_timeout=config.getini("aiotestkit_hang_timeout"),
            gc=config.getini("aiotestkit_hygiene_gc"),
            virtual_clock=bool(config.getini("aiotestkit_virtual_clock")),
            network_sandbox=bool(config.getini(SANDBOX_INI)),
            advice=PYTEST_ADVICE,
            names=_INI_NAMES,
        )
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


def unconfigure() -> None:
    """Give the classes whose methods a test replaced for its loop their own back."""
    restore_classes()


def run_settings(config: pytest.Config) -> TestSettings:
    """The run's settings, from the ini options."""
    return config.stash[_RUN_SETTINGS]


def test_settings(item: pytest.Item) -> TestSettings:
    """The settings of ``item``: the run's, with its markers on top (read once).

    Raises:
        ValueError: if a marker's arguments are invalid; the message names the test
            and the marker.
    """
    cached = item.stash.get(_TEST_SETTINGS, None)
    if cached is not None:
        return cached
    settings = run_settings(item.config)
    for mark in closest_markers(item).values():
        if mark.name not in _SETTINGS_MARKERS:
            continue
        where = f"{item.nodeid}: @pytest.mark.{mark.name}"
        if mark.name == "hygiene":
            if len(mark.args) > 1 or (mark.args and "mode" in mark.kwargs):
                raise ValueError(
                    f"{where} takes one mode and the keywords allow, warn and reason; "
                    f"got {mark.args!r} {mark.kwargs!r}"
                )
            kwargs = dict(mark.kwargs)
            mode = mark.args[0] if mark.args else kwargs.pop("mode", None)
            settings = settings.with_hygiene(mode, where=where, **kwargs)
        elif mark.name == "hang_timeout":
            if len(mark.args) != 1 or mark.kwargs:
                raise ValueError(f"{where} takes one number of seconds")
            settings = settings.with_hang_timeout(mark.args[0], where=where)
        elif mark.name == "virtual_clock":
            options: dict[str, Any] = dict(mark.kwargs)
            enabled = options.pop("enabled", mark.args[0] if mark.args else True)
            settings = settings.with_virtual_clock(enabled, where=where, **options)
    item.stash[_TEST_SETTINGS] = settings
    return settings


def sandbox_options(item: pytest.Item) -> tuple[bool | None, bool]:
    """``(enabled, allow_blocked)`` from the item's network_sandbox marker.

    ``enabled`` is ``None`` without a marker (the ini option decides).

    Raises:
        pytest.UsageError: if the marker has other arguments.
    """
    marker = closest_markers(item).get(SANDBOX_MARKER)
    if marker is None:
        return None, False
    unknown = set(marker.kwargs) - {"enabled", "allow_blocked"}
    if marker.args or unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{SANDBOX_MARKER} takes only the keyword arguments "
            f"enabled= and allow_blocked=, got args={marker.args!r} kwargs={marker.kwargs!r}"
        )
    return bool(marker.kwargs.get("enabled", True)), bool(marker.kwargs.get("allow_blocked"))


def wants_sandbox(item: pytest.Item) -> bool:
    """Whether ``item`` runs in a network sandbox without naming the fixture.

    Yes if it is marked ``network_sandbox`` (not ``enabled=False``), or if the ini
    option is on and it is an async test that a runner aiotestkit knows runs.

    Raises:
        pytest.UsageError: if its marker has other arguments.
    """
    enabled, _ = sandbox_options(item)
    if enabled is not None:
        return enabled
    return run_settings(item.config).network_sandbox and runner_for(item) is not None


def transports_for(metafunc: pytest.Metafunc) -> list[str]:
    """The transports a test using the ``transport`` fixture runs over.

    Raises:
        ValueError: if a name is not a transport.
    """
    marker = metafunc.definition.get_closest_marker("transports")
    if marker is not None:
        return select_transports(marker.args, source="@pytest.mark.transports")
    return select_transports(
        metafunc.config.getini(TRANSPORTS_INI), source=f"ini option {TRANSPORTS_INI}"
    )
