"""The settings of one test, from whichever front end runs it, validated in one place.

The pytest plugin reads them from ini options and markers, :class:`aiotestkit.NetworkTestCase`
from class attributes; both hand the raw values to :class:`TestSettings`, which checks
them and builds the test's :class:`LoopInstrumentation`. What a user must change to
allow a problem is spelled differently by each front end: :class:`Advice` carries those
words into the reports, so the core never gives pytest advice to a unittest user.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ._hygiene import DEFAULT_HANG_TIMEOUT, LIBRARY_ADVICE, Advice, checks_anything, resolve_modes

if TYPE_CHECKING:
    from ._instrumentation import LoopInstrumentation

__all__ = ["GC_OPTIONS", "TestSettings", "parse_timeout"]

GC_OPTIONS: Mapping[str, int | None] = {"young": 1, "full": 2, "off": None}
"""The garbage collection at the end of a test, by option value: generation or ``None``."""


def parse_timeout(value: object, where: str) -> float | None:
    """Read a hang-guard limit: seconds as a number or a string; 0 turns it off.

    Args:
        value: the value as given (an ini string, a marker argument, an attribute).
        where: where it was given, for the error message.

    Returns:
        The limit in seconds, or ``None`` for no limit (``0`` or ``None`` given).

    Raises:
        ValueError: if it is not a number of seconds >= 0.

    Example:
        ```python
        assert parse_timeout("2.5", "ini option aiotestkit_hang_timeout") == 2.5
        ```
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where}: expected a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{where}: expected a number of seconds, got {value!r}") from None
    if not seconds >= 0:
        raise ValueError(f"{where}: expected seconds >= 0 (0 turns it off), got {value!r}")
    return seconds or None


def _reason_given(reason: object) -> bool:
    return isinstance(reason, str) and bool(reason.strip())


@dataclass(frozen=True)
class TestSettings:
    """What aiotestkit does around one async test: checks, hang guard, clock, sandbox.

    Build the run's settings with :meth:`from_options`, then one test's with
    :meth:`with_hygiene`, :meth:`with_hang_timeout` and :meth:`with_virtual_clock`
    (the arguments of its markers, or its class attributes). Each validates what it
    is given and raises :class:`ValueError` naming ``where`` it came from.

    Args:
        checks: the mode of every hygiene check.
        hang_timeout: seconds before the hang guard cancels the test, or ``None``.
        gc_generation: the garbage collection at the end (see :data:`GC_OPTIONS`).
        virtual_clock: the :class:`aiotestkit.VirtualClock` options, or ``None`` for
            real time.
        network_sandbox: whether every async test runs in a network sandbox.
        advice: how the front end in use spells the fixes in reports.

    Example:
        ```python
        settings = TestSettings.from_options(hygiene_checks=["pending_tasks=warn"])
        assert settings.with_hang_timeout(5, where="test_x").hang_timeout == 5.0
        ```
    """

    __test__: ClassVar[bool] = False  # not a test class, whatever its name

    checks: Mapping[str, str]
    hang_timeout: float | None = DEFAULT_HANG_TIMEOUT
    gc_generation: int | None = 1
    virtual_clock: Mapping[str, Any] | None = None
    network_sandbox: bool = False
    advice: Advice = field(default=LIBRARY_ADVICE, compare=False)

    @classmethod
    def from_options(
        cls,
        *,
        hygiene: str = "strict",
        hygiene_checks: Iterable[str] | Mapping[str, str] = (),
        hang_timeout: object = DEFAULT_HANG_TIMEOUT,
        gc: str = "young",
        virtual_clock: bool = False,
        network_sandbox: bool = False,
        advice: Advice = LIBRARY_ADVICE,
        names: Mapping[str, str] | None = None,
    ) -> TestSettings:
        """The settings of a run (or a class of tests), checked.

        Args:
            hygiene: the mode of all checks: ``strict``, ``warn`` or ``off``.
            hygiene_checks: per-check modes, ``"check=mode"`` strings or a mapping.
            hang_timeout: seconds (number or string); ``0`` or ``None``: no limit.
            gc: ``young``, ``full`` or ``off`` (see :data:`GC_OPTIONS`).
            virtual_clock: run every test in virtual time.
            network_sandbox: run every async test in a network sandbox.
            advice: the front end's words for the fixes in reports.
            names: what the front end calls each argument (``{"gc": "ini option
                aiotestkit_hygiene_gc"}``), for error messages; the argument's name
                otherwise.

        Returns:
            The :class:`TestSettings`.

        Raises:
            ValueError: if a value is invalid; the message names it and the choices.

        Example:
            ```python
            assert TestSettings.from_options(gc="off").gc_generation is None
            ```
        """
        names = names or {}
        checks = resolve_modes(
            hygiene.strip(),
            hygiene_checks,
            where=names.get("hygiene", "hygiene") + " / " + names.get("hygiene_checks", "checks"),
        )
        timeout = parse_timeout(hang_timeout, names.get("hang_timeout", "hang_timeout"))
        gc = gc.strip()
        if gc not in GC_OPTIONS:
            raise ValueError(f"{names.get('gc', 'gc')}: expected young, full or off, got {gc!r}")
        return cls(
            checks=checks,
            hang_timeout=timeout,
            gc_generation=GC_OPTIONS[gc],
            virtual_clock={} if virtual_clock else None,
            network_sandbox=bool(network_sandbox),
            advice=advice,
        )

    def with_hygiene(self, mode: object = None, *, where: str, **options: object) -> TestSettings:
        """These settings with one test's hygiene modes on top (the hygiene marker).

        Args:
            mode: a mode for all checks, or ``None``.
            where: where they were given, for error messages.
            **options: ``allow`` (checks turned off), ``warn`` (checks that only warn)
                and ``reason`` (needed by ``allow`` and by mode ``off``).

        Returns:
            New :class:`TestSettings`.

        Raises:
            ValueError: if an option is unknown, a check or mode is unknown, or
                ``allow``/``off`` come without a reason.

        Example:
            ```python
            settings = settings.with_hygiene(allow=["pending_tasks"], reason="SDK", where="t")
            assert settings.checks["pending_tasks"] == "off"
            ```
        """
        allow = options.pop("allow", ())
        warn = options.pop("warn", ())
        reason = options.pop("reason", None)
        if options:
            raise ValueError(
                f"{where} takes one mode and the keywords allow, warn and reason; "
                f"got {sorted(options)!r}"
            )
        if isinstance(allow, str) or isinstance(warn, str):
            raise ValueError(f"{where}: allow and warn take a list of check names")
        if not isinstance(allow, Iterable) or not isinstance(warn, Iterable):
            raise ValueError(f"{where}: allow and warn take a list of check names")
        if (allow or mode == "off") and not _reason_given(reason):
            raise ValueError(
                f"{where}: allowing a hygiene problem needs a reason; "
                "add reason='why this test may leave it behind'"
            )
        checks = resolve_modes(
            "strict",
            self.checks,
            marker_mode=None if mode is None else str(mode),
            allow=[str(name) for name in allow],
            warn=[str(name) for name in warn],
            where=where,
        )
        return dataclasses.replace(self, checks=checks)

    def with_hang_timeout(self, seconds: object, *, where: str) -> TestSettings:
        """These settings with one test's hang-guard limit.

        Args:
            seconds: the limit (number or string); ``0`` turns the guard off.
            where: where it was given, for error messages.

        Returns:
            New :class:`TestSettings`.

        Raises:
            ValueError: if it is not a number of seconds >= 0.

        Example:
            ```python
            assert settings.with_hang_timeout(0, where="t").hang_timeout is None
            ```
        """
        return dataclasses.replace(self, hang_timeout=parse_timeout(seconds, where))

    def with_virtual_clock(
        self, enabled: object = True, *, where: str, **options: object
    ) -> TestSettings:
        """These settings with one test's virtual clock (on with options, or off).

        Args:
            enabled: whether the test runs in virtual time.
            where: where it was given, for error messages.
            **options: :class:`aiotestkit.VirtualClock` arguments.

        Returns:
            New :class:`TestSettings`.

        The options are checked by :class:`aiotestkit.VirtualClock` when the clock is made.

        Example:
            ```python
            clock_options = settings.with_virtual_clock(autojump=False, where="t").virtual_clock
            assert clock_options == {"autojump": False}
            ```
        """
        return dataclasses.replace(self, virtual_clock=dict(options) if enabled else None)

    def instrumentation(self, name: str) -> LoopInstrumentation:
        """A new :class:`LoopInstrumentation` with these settings, for the test ``name``.

        Args:
            name: the test's id, named in its reports.

        Returns:
            The instrumentation, not attached yet.

        Example:
            ```python
            instrumentation = settings.instrumentation("tests/test_x.py::test_x")
            ```
        """
        cls, modes, checking = self._checked_for_instrumentation
        return cls._checked(
            dict(modes), checking, self.hang_timeout, self.gc_generation, name, self.advice
        )

    @functools.cached_property
    def _checked_for_instrumentation(
        self,
    ) -> tuple[type[LoopInstrumentation], dict[str, str], bool]:
        """What every test with these settings shares, checked once per settings object.

        The run's settings are shared by every test without markers: their modes are
        resolved, their limits checked and ``LoopInstrumentation`` imported once, not
        per test. (A cached property writes the instance dict, so it works on this
        frozen dataclass.)
        """
        from ._instrumentation import LoopInstrumentation, _check_limits

        modes = resolve_modes("strict", self.checks)
        _check_limits(self.hang_timeout, self.gc_generation)
        return LoopInstrumentation, modes, checks_anything(modes)
