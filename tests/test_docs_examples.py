"""The code of the documentation runs: every complete file shown in docs/ and README.md.

A fenced block with a file name, as Material for MkDocs shows one above the code::

    ```python title="test_first.py"

is a complete file; ``title="Fails: test_leak.py"`` is a complete test file that
shows a failure on purpose (what a hygiene report looks like), and every test in it
must fail. ``title="Before: test_x.py"`` is another tool's code that a migration
guide starts from: shown, never run (that tool need not be installed).

Each page's files are written to a directory of their own, ``--8<-- "path"`` lines
(pymdownx.snippets) replaced by the file they include, and pytest runs them there (in a
process of their own, through ``pytester``) with the settings of
``DEFAULT_INI`` unless the page shows its own ``pytest.ini``. Every test function of
every ``test_*.py`` file must pass. ``examples/kraken`` is importable, so pages can
``from quotation import Kraken`` as the tutorial does.

A block without a file name is a fragment (part of a file, a command, an output):
it is not run, and it must not define a test, or a complete test would go unrun.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
KRAKEN = ROOT / "examples" / "kraken"

DEFAULT_INI = f"""\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
filterwarnings = error
pythonpath = {KRAKEN}
"""

_FENCE = re.compile(
    r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence) *$",
    re.M | re.S,
)
_TITLE = re.compile(r'title="([^"]+)"')
_SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.M)


def code_blocks(page: Path) -> list[tuple[str, str | None, str]]:
    """``(language, file name or None, code)`` of each fenced block of ``page``."""
    blocks = []
    for match in _FENCE.finditer(page.read_text()):
        info = match.group("info").strip()
        language = info.split(maxsplit=1)[0] if info else ""
        title = _TITLE.search(info)
        indent = len(match.group("indent"))
        body = "".join(line[indent:] for line in match.group("body").splitlines(True))
        body = _SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text().rstrip("\n"), body)
        blocks.append((language, title.group(1) if title else None, body))
    return blocks


def defined_tests(code: str) -> set[str]:
    """Names of the test functions and ``Test*`` classes' test methods in ``code``."""
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(
            "test"
        ):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                and item.name.startswith("test")
            )
    return names


FAILS = "Fails: "
BEFORE = "Before: "


def page_files(page: Path) -> dict[str, str]:
    """File name -> code; the names of files that must fail start with ``FAILS``."""
    files: dict[str, str] = {}
    for _, title, code in code_blocks(page):
        if title is None or title.startswith(BEFORE):
            continue
        assert " " not in title.removeprefix(FAILS), f"{page.relative_to(ROOT)}: {title!r}"
        assert title not in files, f"{page.relative_to(ROOT)} shows {title} twice"
        files[title] = code
    return files


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


RUNNABLE = [
    page
    for page in PAGES
    if any(name.removeprefix(FAILS).startswith("test_") for name in page_files(page))
]


def test_pages_with_runnable_code_are_found() -> None:
    # The pages of the site that show complete tests; more may come, none may go.
    names = {str(page.relative_to(ROOT)) for page in RUNNABLE}
    assert {"README.md", "docs/tutorial/index.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_fragment_defines_a_test(page: Path) -> None:
    for language, title, code in code_blocks(page):
        if title is None and language == "python" and _parses(code):
            assert not defined_tests(code), (
                f"{page.relative_to(ROOT)}: a fragment defines {sorted(defined_tests(code))}; "
                'give the block a file name (```python title="test_name.py"```) so that it runs'
            )


def run(pytester: pytest.Pytester, names: list[str]) -> tuple[set[str], set[str], list[str]]:
    """Run the test files ``names``: the tests that passed, failed, and the failures.

    In a process of its own, as a reader runs them: in this process the page's modules
    would meet the project's own (a page's ``test_sandbox.py`` and ``tests/``'s), and
    libraries imported by the run would be imported twice.
    """
    report = pytester.path / "report.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", f"--junitxml={report}", *names
    )
    passed, failed, problems = set(), set(), []
    stems = {name.removesuffix(".py").replace("/", "."): name for name in names}
    for case in ElementTree.parse(report).iter("testcase"):
        classname = case.get("classname", "")
        test = re.sub(r"\[.*\]$", "", case.get("name", ""))
        stem = next(s for s in stems if classname == s or classname.startswith(f"{s}."))
        node = "::".join([stems[stem], *filter(None, [classname[len(stem) + 1 :], test])])
        if any(case.find(tag) is not None for tag in ("failure", "error", "skipped")):
            failed.add(node)
            problems.append(node)
        else:
            passed.add(node)
    if problems:
        problems.append(result.stdout.str()[-4000:])
    return passed - failed, failed, problems


# Pages whose code uses what only newer Pythons have, with the version they need.
NEEDS_PYTHON = {
    ROOT / "docs" / "how-to" / "asyncio-streams.md": ((3, 11), "StreamWriter.start_tls"),
}


def _runnable_here(page: Path) -> object:
    version, feature = NEEDS_PYTHON.get(page, ((3, 10), ""))
    skip = pytest.mark.skipif(
        sys.version_info < version,
        reason=f"{feature} is new in Python {'.'.join(map(str, version))}",
    )
    return pytest.param(page, marks=skip, id=str(page.relative_to(ROOT)))


@pytest.mark.parametrize("page", [_runnable_here(page) for page in RUNNABLE])
def test_the_files_of_the_page_pass(pytester: pytest.Pytester, page: Path) -> None:
    files = page_files(page)
    files.setdefault("pytest.ini", DEFAULT_INI)
    must_pass, must_fail = [], []
    for title, code in files.items():
        name = title.removeprefix(FAILS)
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
        if name.startswith("test_") and name.endswith(".py"):
            tests = {f"{name}::{test}" for test in defined_tests(code)}
            assert tests, f"{page.relative_to(ROOT)}: {name} defines no test"
            (must_fail if title.startswith(FAILS) else must_pass).append((name, tests))
    if must_pass:
        passed, failed, problems = run(pytester, [name for name, _ in must_pass])
        assert problems == []
        assert passed == set().union(*(tests for _, tests in must_pass))
    if must_fail:
        passed, failed, _ = run(pytester, [name for name, _ in must_fail])
        assert passed == set()
        assert failed == set().union(*(tests for _, tests in must_fail))
