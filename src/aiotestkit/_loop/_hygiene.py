"""Hygiene checks: their names, their modes, and the report of what a test left behind.

The checks themselves are gathered by :class:`aiotestkit.LoopInstrumentation`; this
module holds what they have in common: the check names, the ``strict`` / ``warn`` /
``off`` modes and how settings from the ini file and a marker combine, and
:class:`HygieneReport`, the one readable report of a test's problems.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import HygieneError, HygieneWarning

__all__ = [
    "CHECKS",
    "DEFAULT_HANG_TIMEOUT",
    "LIBRARY_ADVICE",
    "MODES",
    "Advice",
    "HygieneIssue",
    "HygieneReport",
    "LateIssue",
    "resolve_modes",
]

DEFAULT_HANG_TIMEOUT = 60.0
"""Seconds an async test may run before the hang guard cancels it."""

CHECKS: tuple[str, ...] = (
    "pending_tasks",
    "unretrieved_exceptions",
    "unawaited_coroutines",
    "unclosed_resources",
    "unanswered_requests",
    "unused_expectations",
    "unexpected_requests",
    "refused_connections",
)
"""The names of the hygiene checks, in the order the report lists them."""

MODES: tuple[str, ...] = ("strict", "warn", "off")
"""``strict`` fails the test, ``warn`` emits a :class:`HygieneWarning`, ``off`` ignores."""

_TITLES = {
    "pending_tasks": "tasks still pending when the test ended",
    "unretrieved_exceptions": "exceptions that no one retrieved",
    "unawaited_coroutines": "coroutines that were never awaited",
    "unclosed_resources": "resources that were never closed",
    "unanswered_requests": "requests and connections the test never answered",
    "unused_expectations": "expectations used fewer times than declared",
    "unexpected_requests": "requests that matched no expectation and that the test never received",
    "refused_connections": "network access refused by the sandbox",
}

_FIXES = {
    "pending_tasks": "await or cancel every task the test starts (asyncio.TaskGroup helps)",
    "unretrieved_exceptions": "await the task or future whose exception was lost, "
    "or handle the error where it happens",
    "unawaited_coroutines": "add the missing 'await' where the coroutine was created",
    "unclosed_resources": "close each one ('async with', or await .close())",
    "unanswered_requests": "answer each request and end each connection a server holds "
    "before it closes, as each line says",
    "unused_expectations": "check the client made the calls the test declared, or declare "
    "the ones it may skip with optional=True (times=None: any number of times)",
    "unexpected_requests": "declare the request with server.expect(...), fix the one that "
    "came closest as each line says, or take it with receive_request() and answer it",
    "refused_connections": "route the host to a test server, fix the address the client "
    "uses, or declare the refusal expected with sandbox.expect_blocked(host, port) or "
    "{allow_blocked}",
}


@dataclass(frozen=True)
class Advice:
    """How the front end in use lets a user change a setting: the "how to fix" of reports.

    Args:
        allow_checks: how to allow known problems; ``{checks}`` is replaced by the list
            of the checks that found them, e.g. ``['pending_tasks']``.
        hang_timeout: how to raise or turn off the hang guard's limit.
        allow_blocked: how to let refused connections pass.

    Example:
        ```python
        advice = Advice(allow_checks="set hygiene_checks = {checks}")
        assert advice.allow(["pending_tasks"]) == "set hygiene_checks = ['pending_tasks']"
        ```
    """

    allow_checks: str = (
        "A known problem can be allowed with LoopInstrumentation(checks={checks_off})."
    )
    hang_timeout: str = "LoopInstrumentation(hang_timeout=seconds) (None turns the guard off)"
    allow_blocked: str = "NetworkSandbox(allow_blocked=True)"

    def allow(self, checks: Sequence[str]) -> str:
        """The sentence telling how to allow the problems of ``checks``.

        Args:
            checks: names of hygiene checks.

        Returns:
            :attr:`allow_checks` with ``{checks}`` (a list) and ``{checks_off}`` (a
            mapping to ``'off'``) filled in.

        Example:
            ```python
            sentence = LIBRARY_ADVICE.allow(["pending_tasks"])
            assert sentence.endswith("(checks={'pending_tasks': 'off'}).")
            ```
        """
        off = "{" + ", ".join(f"{check!r}: 'off'" for check in checks) + "}"
        return self.allow_checks.replace("{checks}", repr(list(checks))).replace(
            "{checks_off}", off
        )


LIBRARY_ADVICE = Advice()
"""The advice for code that uses :class:`LoopInstrumentation` directly."""


_CHECK_SET = frozenset(CHECKS)
_MODE_SET = frozenset(MODES)


def _complete(overrides: Mapping[str, str]) -> bool:
    """Whether ``overrides`` maps exactly every check to a valid mode (set operations in C)."""
    try:
        return _MODE_SET.issuperset(overrides.values()) and overrides.keys() == _CHECK_SET
    except TypeError:  # an unhashable value: not a mode, the slow path says so
        return False


def _check_mode(mode: object, where: str) -> str:
    if mode not in MODES:
        raise ValueError(f"{where}: hygiene mode must be one of {', '.join(MODES)}; got {mode!r}")
    return str(mode)


def _check_name(name: object, where: str) -> str:
    if name not in CHECKS:
        raise ValueError(
            f"{where}: unknown hygiene check {name!r}; the checks are {', '.join(CHECKS)}"
        )
    return str(name)


def resolve_modes(
    default: str = "strict",
    overrides: Iterable[str] | Mapping[str, str] = (),
    *,
    marker_mode: str | None = None,
    allow: Iterable[str] = (),
    warn: Iterable[str] = (),
    where: str = "hygiene settings",
) -> dict[str, str]:
    """Combine the run's settings and one test's marker into a mode for every check.

    Later sources win: ``default``, then ``overrides``, then ``marker_mode`` (all
    checks), then ``warn`` and ``allow`` (named checks).

    Args:
        default: the mode of every check (``"strict"``, ``"warn"`` or ``"off"``).
        overrides: per-check modes, as a mapping or as ``"check=mode"`` strings.
        marker_mode: a mode for all checks of one test, or ``None``.
        allow: checks turned ``off`` for one test.
        warn: checks turned to ``warn`` for one test.
        where: where the settings came from, for error messages.

    Returns:
        A dict mapping each name in :data:`CHECKS` to its mode.

    Raises:
        ValueError: if a mode or a check name is unknown, or an override is not
            written ``check=mode``.

    Example:
        ```python
        modes = resolve_modes("strict", ["pending_tasks=warn"], allow=["unclosed_resources"])
        assert modes["pending_tasks"] == "warn"
        ```
    """
    if (
        marker_mode is None
        and not allow
        and not warn
        and (type(overrides) is dict or isinstance(overrides, Mapping))
        and len(overrides) == len(CHECKS)
        and _complete(overrides)
    ):
        # Every check given a valid mode already (a test's resolved settings): the
        # default plays no part, but it is still checked.
        _check_mode(default, where)
        if type(overrides) is dict and tuple(overrides) == CHECKS:
            return overrides.copy()  # in the order of CHECKS already: one C copy
        return {check: overrides[check] for check in CHECKS}
    modes = dict.fromkeys(CHECKS, _check_mode(default, where))
    pairs: Iterable[tuple[str, str]]
    if isinstance(overrides, Mapping):
        pairs = overrides.items()
    else:
        parsed = []
        for line in overrides:
            name, sep, mode = line.partition("=")
            if not sep:
                raise ValueError(f"{where}: expected 'check=mode', got {line!r}")
            parsed.append((name.strip(), mode.strip()))
        pairs = parsed
    for name, mode in pairs:
        modes[_check_name(name, where)] = _check_mode(mode, where)
    if marker_mode is not None:
        modes = dict.fromkeys(CHECKS, _check_mode(marker_mode, where))
    for name in warn:
        modes[_check_name(name, where)] = "warn"
    for name in allow:
        modes[_check_name(name, where)] = "off"
    return modes


def checks_anything(modes: Mapping[str, str]) -> bool:
    """Whether any check in ``modes`` (as :func:`resolve_modes` returns them) is on."""
    return "strict" in modes.values() or "warn" in modes.values()


@dataclass(frozen=True)
class HygieneIssue:
    """One problem a test left behind.

    Args:
        check: the name of the check that found it (one of :data:`CHECKS`).
        message: what was observed, possibly on several lines.

    Example:
        ```python
        issue = HygieneIssue("pending_tasks", "Task 'poll' created at test_poll.py:12")
        assert issue.check == "pending_tasks"
        ```
    """

    check: str
    message: str


@dataclass
class HygieneReport:
    """Everything the hygiene checks found in one test, and the mode of each check.

    Args:
        test: what was checked (a test id), named in the report.
        modes: the mode of each check.
        issues: the problems found, in the order they were observed.
        advice: how the front end that runs the test spells the fixes.

    Example:
        ```python
        report = HygieneReport("test_x", dict.fromkeys(CHECKS, "strict"))
        assert not bool(report)
        ```
    """

    test: str
    modes: dict[str, str]
    issues: list[HygieneIssue] = field(default_factory=list)
    advice: Advice = field(default=LIBRARY_ADVICE, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.issues)

    def issues_in(self, mode: str) -> list[HygieneIssue]:
        """The issues whose check is in ``mode``, in the report's order.

        Args:
            mode: ``"strict"``, ``"warn"`` or ``"off"``.

        Returns:
            A list of :class:`HygieneIssue`.

        Example:
            ```python
            assert HygieneReport("t", dict.fromkeys(CHECKS, "warn")).issues_in("strict") == []
            ```
        """
        return [issue for issue in self.issues if self.modes.get(issue.check) == mode]

    def format(self, mode: str | None = None) -> str:
        """The report as text: one section per check, with how to fix it.

        Args:
            mode: only the issues of checks in this mode; all issues when ``None``.

        Returns:
            The text, empty when there is nothing to report.

        Example:
            ```python
            assert HygieneReport("t", dict.fromkeys(CHECKS, "strict")).format() == ""
            ```
        """
        issues = self.issues if mode is None else self.issues_in(mode)
        if not issues:
            return ""
        lines = [f"{self.test} left {len(issues)} hygiene problem(s) behind:"]
        for check in CHECKS:
            found = [issue for issue in issues if issue.check == check]
            if not found:
                continue
            lines.append(f"{_TITLES[check]} ({check}, {len(found)}):")
            for issue in found:
                first, *rest = issue.message.splitlines() or [""]
                lines.append(f"  - {first}")
                lines.extend(f"    {line}" for line in rest)
            fix = _FIXES[check].replace("{allow_blocked}", self.advice.allow_blocked)
            lines.append(f"  fix: {fix}")
        lines.append(self.advice.allow(sorted({issue.check for issue in issues})))
        return "\n".join(lines)

    def raise_or_warn(self) -> None:
        """Raise for the issues of ``strict`` checks, warn for those of ``warn`` checks.

        Raises:
            aiotestkit.HygieneError: (an :class:`AssertionError`) if a ``strict``
                check found anything; the message is :meth:`format` of those issues.

        Warns:
            aiotestkit.HygieneWarning: if a ``warn`` check found anything.

        Example:
            ```python
            HygieneReport("t", dict.fromkeys(CHECKS, "strict")).raise_or_warn()
            ```
        """
        __tracebackhide__ = True
        if not self.issues:
            return
        warned = self.format("warn")
        if warned:
            warnings.warn(HygieneWarning(warned), stacklevel=3)
        failed = self.format("strict")
        if failed:
            raise HygieneError(failed, report=self)


@dataclass(frozen=True)
class LateIssue:
    """A problem found after the test that made it ended, or whose test is not known.

    A leaked object is often found later than its test: the garbage collector frees
    a reference cycle during another test, and its finalizer warns. That other test
    is not blamed; the problem is kept as a late issue, with the test that created
    the object when it is known, and where it was created.

    Args:
        check: the name of the check that found it (one of :data:`CHECKS`).
        message: what was observed, and where the object was created.
        test: the test that created the object, or ``None`` when it is not known.
        found_in: the test that was running when it was found.
        mode: the mode of ``check`` for ``test`` (for ``found_in`` when unknown).
        why_unknown: why ``test`` is not known, or ``""``.
        where: ``(filename, line)`` where the object was created, if known.

    Example:
        ```python
        issue = LateIssue("unclosed_resources", "Unclosed client session", "test_a", "test_b",
                          "strict")
        assert issue.format().startswith("test_a left a hygiene problem behind")
        ```
    """

    check: str
    message: str
    test: str | None
    found_in: str
    mode: str
    why_unknown: str = ""
    where: tuple[str, int] | None = None

    def format(self) -> str:
        """The issue as text, with its check, how to fix it, and who is not blamed.

        Returns:
            The text, on several lines.

        Example:
            ```python
            print(issue.format())
            ```
        """
        if self.test is not None:
            head = (
                f"{self.test} left a hygiene problem behind that was found after it ended, "
                f"during {self.found_in}:"
            )
        else:
            head = (
                f"a hygiene problem whose test is not known was found during {self.found_in}, "
                f"which is not blamed: {self.why_unknown}:"
            )
        first, *rest = self.message.splitlines() or [""]
        return "\n".join(
            [
                head,
                f"{_TITLES[self.check]} ({self.check}):",
                f"  - {first}",
                *(f"    {line}" for line in rest),
                f"  fix: {_FIXES[self.check]}. A full garbage collection at the end of each "
                "test (ini option aiotestkit_hygiene_gc = full) finds reference cycles in the "
                "test that made them.",
            ]
        )
