"""The reference pages of the documentation site stay complete against the code.

What the plugin registers is read the way a user sees it, from pytest's own
``--fixtures``, ``--markers`` and ``--help`` output, and compared with the tables of
``docs/reference/pytest-plugin.md``; the API pages must have an entry for every
public name; the error table must name the bases each class really has.
"""

from __future__ import annotations

import ast
import re
import socket
import textwrap
from pathlib import Path

import pytest

import aiotestkit
import aiotestkit.errors
import aiotestkit.mock

DOCS = Path(__file__).resolve().parent.parent / "docs"
SRC = Path(__file__).resolve().parent.parent / "src"
REFERENCE = DOCS / "reference"


def table_rows(page: Path, heading: str) -> dict[str, list[str]]:
    """The rows of the first table under ``## heading``, by the name in their first cell."""
    text = page.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        name = re.match(r"`(?:@pytest\.mark\.)?([\w.]+)`", cells[0])
        assert name, f"{page.name}: cannot read the name in {line!r}"
        assert name.group(1) not in rows, f"{page.name}: {name.group(1)} is listed twice"
        rows[name.group(1)] = cells[1:]
    assert rows, f"{page.name} has no table under '## {heading}'"
    return rows


def documented_objects(*pages: str) -> set[str]:
    found: set[str] = set()
    for page in pages:
        found.update(re.findall(r"^::: ([\w.]+)$", (REFERENCE / page).read_text(), re.M))
    return found


# -- the plugin's fixtures, markers and ini options ----------------------------------


@pytest.fixture(autouse=True)
def _ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def plugin_fixtures(pytester: pytest.Pytester) -> dict[str, str]:
    """Fixture name -> scope, from ``pytest --fixtures`` (the public ones, as users see)."""
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "defined from aiotestkit." in line)
    fixtures = {}
    for line in lines[start + 1 :]:
        if line.startswith("-----"):
            break
        match = re.match(r"^(\w+)(?: \[(\w+) scope\])? -- ", line)
        if match:
            fixtures[match.group(1)] = match.group(2) or "function"
    return fixtures


def test_every_fixture_is_listed_with_its_scope(pytester: pytest.Pytester) -> None:
    registered = plugin_fixtures(pytester)
    assert len(registered) >= 10  # the parsing found the plugin's section
    documented = {
        name: cells[0]
        for name, cells in table_rows(REFERENCE / "pytest-plugin.md", "Fixtures").items()
    }
    assert documented == registered


def registered_markers(pytester: pytest.Pytester, *args: str) -> set[str]:
    result = pytester.runpytest("--markers", "-p", "no:cacheprovider", *args)
    return {
        match.group(1)
        for line in result.stdout.lines
        if (match := re.match(r"^@pytest\.mark\.(\w+)", line))
    }


def test_every_marker_is_listed_with_its_arguments(pytester: pytest.Pytester) -> None:
    others = registered_markers(pytester, "-p", "no:aiotestkit")
    # httpx_mock is pytest-httpx's marker too, registered by both plugins when both are in.
    ours = (registered_markers(pytester) - others) | ({"httpx_mock"} & others)
    documented = table_rows(REFERENCE / "pytest-plugin.md", "Markers")
    assert set(documented) == ours
    config = pytester.parseconfigure()
    signatures = {
        line.split(":", 1)[0] for line in config.getini("markers") if line.split("(")[0] in ours
    }
    for name, (arguments,) in documented.items():
        signature = re.match(r"`(\(.*?\))`", arguments)
        assert signature, f"the arguments of {name} start with its signature in backquotes"
        assert f"{name}{signature.group(1)}" in signatures, (name, sorted(signatures))


def test_every_ini_option_is_listed_with_its_type_and_default(pytester: pytest.Pytester) -> None:
    help_text = pytester.runpytest("--help", "-p", "no:cacheprovider").stdout.str()
    registered = dict(re.findall(r"^  (aiotestkit_\w+) \((\w+)\):", help_text, re.M))
    assert len(registered) >= 5
    documented = table_rows(REFERENCE / "pytest-plugin.md", "ini options")
    assert {name: cells[0] for name, cells in documented.items()} == registered
    config = pytester.parseconfig()
    for name, cells in documented.items():
        value = config.getini(name)
        shown = {
            "bool": lambda v: str(v).lower(),
            "args": " ".join,
            "linelist": lambda v: " ".join(v) or "(empty)",
        }.get(cells[0], str)(value)
        assert cells[1].strip("`") == shown, (name, cells[1], value)


# -- the API pages --------------------------------------------------------------------


def test_every_public_name_has_a_reference_entry() -> None:
    documented = documented_objects("api.md", "errors.md")
    facades = {name for name in documented if name.startswith("aiotestkit.compat.")}
    assert sorted(documented - facades) == sorted(
        f"aiotestkit.{name}" for name in aiotestkit.__all__
    )
    assert facades == {"aiotestkit.compat.aioresponses", "aiotestkit.compat.httpx_mock"}
    assert documented_objects("mock.md") == {"aiotestkit.mock"}
    assert aiotestkit.mock.__all__  # rendered from the module, every name of __all__


def test_the_error_table_names_the_real_bases() -> None:
    def spelled(base: type) -> str:
        if base.__module__ in ("builtins", "aiotestkit", "aiotestkit.errors"):
            return base.__name__
        return f"{base.__module__}.{base.__name__}"

    page = REFERENCE / "errors.md"
    rows = table_rows(page, "Exceptions") | table_rows(page, "Warnings")
    classes = {
        name: getattr(aiotestkit, name)
        for name in aiotestkit.__all__
        if isinstance(getattr(aiotestkit, name), type)
        and issubclass(getattr(aiotestkit, name), (BaseException, Warning))
    }
    assert set(rows) == set(classes)
    for name, cls in classes.items():
        bases = [spelled(base) for base in cls.__bases__]
        assert rows[name][0] == ", ".join(f"`{base}`" for base in bases), name
    assert issubclass(aiotestkit.NameResolutionDenied, socket.gaierror)


def docstrings() -> list[tuple[str, str]]:
    """``(where, docstring)`` of every module, class and function under src/."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(
                node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            ) and (doc := ast.get_docstring(node)):
                name = getattr(node, "name", "")
                found.append((f"{path.relative_to(SRC)}:{name}", doc))
    return found


def test_docstring_examples_are_python_blocks_that_compile() -> None:
    """Examples are plain ```python blocks, as the site renders them; nothing runs ``>>>``.

    They are fragments (``server``, ``session`` come from the context), so they are
    compiled, not run: top-level ``await`` is allowed.
    """
    problems = []
    for where, doc in docstrings():
        if ">>>" in doc:
            problems.append(f"{where}: a >>> example; write a ```python block")
        lines = doc.splitlines()
        for number, line in enumerate(lines):
            if line.strip() in ("Example:", "Examples:") and (
                number + 1 == len(lines) or lines[number + 1].strip() != "```python"
            ):
                problems.append(f"{where}: {line.strip()} is not followed by a ```python block")
        for block in re.findall(r"^( *)```python\n(.*?)^\1```$", doc, re.M | re.S):
            code = textwrap.dedent(block[1])
            try:
                compile(code, where, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            except SyntaxError as error:
                problems.append(f"{where}: {error}")
    assert problems == []


def test_the_readme_links_to_files_that_exist() -> None:
    readme = DOCS.parent / "README.md"
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme.read_text())
    local = [target for target in targets if "://" not in target]
    assert local, "the README links to the documentation"
    assert [target for target in local if not (readme.parent / target).exists()] == []
