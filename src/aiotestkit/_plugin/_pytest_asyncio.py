"""Everything aiotestkit knows of pytest-asyncio beyond its public API, in one place.

pytest-asyncio has no public way to get the event loop a test will run on before it
runs, nor to give one of its ini options a default. These few functions do it for
each supported version (1.0 to the newest), and ``tests/test_plugin_runners.py``
checks them against the installed one; nothing else in aiotestkit touches
pytest-asyncio's internals.
"""

from __future__ import annotations

import asyncio
import warnings

import pytest
import pytest_asyncio

from ._markers import closest_markers

__all__ = [
    "FIXTURE_LOOP_SCOPE_INI",
    "default_fixture_loop_scope",
    "function_loop_fixture",
    "is_async_test",
    "loop_of",
    "loop_scope",
    "quiet_unset_fixture_loop_scope",
    "test_loop",
]

FIXTURE_LOOP_SCOPE_INI = "asyncio_default_fixture_loop_scope"

# The value pytest-asyncio >= 1.2 accepts for "what leaving the option unset does".
_MATCH_FIXTURE_SCOPE = "fixture-scope"
_UNSET_WARNING = f'The configuration option "{FIXTURE_LOOP_SCOPE_INI}" is unset'


def is_async_test(item: pytest.Item) -> bool:
    """Whether pytest-asyncio runs ``item`` (its public :func:`pytest_asyncio.is_async_test`)."""
    return bool(pytest_asyncio.is_async_test(item))


def loop_scope(item: pytest.Item) -> str:
    """The scope of the loop pytest-asyncio runs ``item`` on, as pytest-asyncio decides it.

    The ``loop_scope`` (or older ``scope``) of the closest ``asyncio`` marker, else
    the ``asyncio_default_test_loop_scope`` ini option, else ``function``.
    """
    marker = closest_markers(item).get("asyncio")
    scope = (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")) if marker else None
    if scope is None:
        return _default_loop_scope(item.config)
    return str(scope)


_DEFAULT_LOOP_SCOPE = pytest.StashKey[str]()


def _default_loop_scope(config: pytest.Config) -> str:
    try:
        return config.stash[_DEFAULT_LOOP_SCOPE]
    except KeyError:
        pass
    try:
        scope = config.getini("asyncio_default_test_loop_scope")
    except ValueError:  # a pytest-asyncio without that option
        scope = None
    config.stash[_DEFAULT_LOOP_SCOPE] = default = str(scope or "function")
    return default


def test_loop(request: pytest.FixtureRequest, scope: str) -> asyncio.AbstractEventLoop:
    """The event loop of ``scope`` that pytest-asyncio runs the requesting test on.

    pytest-asyncio >= 1.1 keeps it in an :class:`asyncio.Runner` fixture named
    ``_<scope>_scoped_runner``; 1.0 in a loop fixture named ``_<scope>_event_loop``.
    Requesting the fixture makes it set up before, and torn down after, the caller.

    Raises:
        pytest.FixtureLookupError: if the installed pytest-asyncio has neither.
    """
    try:
        runner = request.getfixturevalue(f"_{scope}_scoped_runner")
    except pytest.FixtureLookupError:
        loop: asyncio.AbstractEventLoop = request.getfixturevalue(f"_{scope}_event_loop")
        return loop
    loop = runner.get_loop()
    return loop


# pytest-asyncio >= 1.1: the asyncio.Runner fixture of function-scoped loops.
_FUNCTION_RUNNER = "_function_scoped_runner"
_HAS_FUNCTION_RUNNER = hasattr(getattr(pytest_asyncio, "plugin", None), _FUNCTION_RUNNER)


def function_loop_fixture(item: pytest.Item) -> str | None:
    """The fixture that makes ``item``'s loop if that loop is function-scoped, else ``None``.

    pytest-asyncio (>= 1.1) runs the test on the :class:`asyncio.Runner` of its
    ``_function_scoped_runner`` fixture, made for the test alone and closed in its
    teardown. ``None`` for a loop of a wider scope (shared by several tests), and
    for a pytest-asyncio without that fixture.
    """
    if loop_scope(item) != "function":
        return None
    return _FUNCTION_RUNNER if _HAS_FUNCTION_RUNNER else None


def loop_of(runner: object) -> asyncio.AbstractEventLoop:
    """The loop of the value of the fixture :func:`function_loop_fixture` names.

    Raises:
        TypeError: if ``runner`` is not an :class:`asyncio.Runner`.
    """
    get_loop = getattr(runner, "get_loop", None)
    if get_loop is None:
        raise TypeError(f"pytest-asyncio's {_FUNCTION_RUNNER} gave {runner!r}, not a Runner")
    loop: asyncio.AbstractEventLoop = get_loop()
    return loop


def _knows_fixture_scope_value() -> bool:
    plugin = getattr(pytest_asyncio, "plugin", None)
    return getattr(plugin, "_MATCH_FIXTURE_SCOPE", None) == _MATCH_FIXTURE_SCOPE


def default_fixture_loop_scope(parser: pytest.Parser) -> bool:
    """Give ``asyncio_default_fixture_loop_scope`` the default that means "unset".

    pytest-asyncio warns (a ``PytestDeprecationWarning``, an error under
    ``filterwarnings = error``) when a project leaves that option unset, which a
    project that never used pytest-asyncio does: it came with aiotestkit. Where
    pytest-asyncio has a value that keeps the unset behaviour (``fixture-scope``),
    it becomes the option's default; a value the project sets, in its ini file or
    with ``-o``, still wins. Call it after pytest-asyncio registered its options.

    Returns:
        True if the default was set; False for a pytest-asyncio without that value
        (use :func:`quiet_unset_fixture_loop_scope` then).
    """
    if not _knows_fixture_scope_value():
        return False
    parser.addini(
        FIXTURE_LOOP_SCOPE_INI,
        type="string",
        help="default scope of the asyncio event loop used to execute async fixtures "
        "(default, given by aiotestkit: fixture-scope, what pytest-asyncio does when unset)",
        default=_MATCH_FIXTURE_SCOPE,
    )
    return True


def quiet_unset_fixture_loop_scope() -> None:
    """Before pytest-asyncio's ``pytest_configure``: drop its warning about the unset option.

    Only for pytest-asyncio versions without a ``fixture-scope`` value (see
    :func:`default_fixture_loop_scope`): the behaviour stays the one of the unset
    option, only the warning, which aiotestkit's installation caused, is not shown.
    pytest runs ``pytest_configure`` inside its own ``warnings.catch_warnings()``, so
    the filter goes with it; it matches that one message only.
    """
    if _knows_fixture_scope_value():
        return
    warnings.filterwarnings(
        "ignore", message=_UNSET_WARNING, category=pytest.PytestDeprecationWarning
    )
