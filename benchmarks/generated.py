"""The test files each benchmark variant runs, generated into a temporary directory.

Every variant of a scenario gets its own directory (``pytest.ini``, ``conftest.py``,
``bench_client.py``, ``test_bench.py``) and runs in its own pytest process. The client
code (``bench_client.fetch_json``) and the assertion are the same for every tool; only
the way the tool answers the request differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOST = "api.example.com"
PAYLOAD = '{"result": {"price": "3602.2", "volume": 17}, "error": []}'

INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
"""

# Records the duration of each phase of each test, and the outcomes, into the JSON file
# named by BENCH_RESULT (written by the controller only under xdist).
CONFTEST = """\
import json
import os
import ssl

import pytest

_PHASES = {"setup": 0.0, "call": 0.0, "teardown": 0.0}
_OUTCOMES = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}


def pytest_runtest_logreport(report):
    _PHASES[report.when] += report.duration
    if report.when == "call":
        _OUTCOMES[report.outcome] += 1
    elif report.outcome == "failed":
        _OUTCOMES["errors"] += 1
    elif report.when == "setup" and report.outcome == "skipped":
        _OUTCOMES["skipped"] += 1


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return
    path = os.environ.get("BENCH_RESULT")
    if path:
        with open(path, "w") as f:
            json.dump({"phases": _PHASES, "outcomes": _OUTCOMES}, f)


@pytest.fixture(scope="session")
def bench_ca():
    import trustme

    return trustme.CA()


@pytest.fixture(scope="session")
def bench_server_ssl(bench_ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    bench_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def bench_client_ssl(bench_ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bench_ca.configure_trust(context)
    return context
"""

CLIENT = f"""\
import json

HOST = {HOST!r}
PAYLOAD = json.loads({PAYLOAD!r})


async def fetch_json(session, url, **kwargs):
    # The client code under test: the same for every tool.
    async with session.get(url, **kwargs) as response:
        response.raise_for_status()
        return await response.json()
"""

HEADER = """\
import asyncio

import aiohttp
import pytest

from bench_client import HOST, PAYLOAD, fetch_json

pytestmark = pytest.mark.asyncio
"""

PARAM = '@pytest.mark.parametrize("i", range({n}))\n'

# Scenario 1 and 2 bodies: {scheme} is "http" or "https", {port} 80 or 443.
BODIES: dict[str, str] = {
    "baseline": """
{param}async def test_get(i):
    pass
""",
    "aiotestkit-redirector": """
{param}async def test_get(i, case_controlled_server_factory, aiohttp_redirector):
    server = await case_controlled_server_factory(scheme="{scheme}")
    aiohttp_redirector.add_server(HOST, {port}, server)
    url = f"{scheme}://{{HOST}}/item/{{i}}"
    task = asyncio.create_task(fetch_json(aiohttp_redirector.session, url))
    request = await server.receive_request()
    server.send_json(request, PAYLOAD)
    assert await task == PAYLOAD
""",
    "aiotestkit-sandbox": """
{param}async def test_get(i, case_controlled_server, network_sandbox):
    await network_sandbox.route(HOST, {port}, case_controlled_server)

    async def client():
        # An unmodified client: it makes its own session, with default settings.
        async with aiohttp.ClientSession() as session:
            return await fetch_json(session, f"{scheme}://{{HOST}}/item/{{i}}")

    task = asyncio.create_task(client())
    request = await case_controlled_server.receive_request()
    case_controlled_server.send_json(request, PAYLOAD)
    assert await task == PAYLOAD
""",
    "pytest-aiohttp": """
from aiohttp import web


async def handler(request):
    return web.json_response(PAYLOAD)


{param}async def test_get(i, aiohttp_raw_server{tls_fixture}):
    server = await aiohttp_raw_server(handler{tls_server})
    async with aiohttp.ClientSession({tls_client}) as session:
        assert await fetch_json(session, str(server.make_url(f"/item/{{i}}"))) == PAYLOAD
""",
    "pytest-httpserver": """
{tls_override}
{param}async def test_get(i, httpserver{tls_fixture}):
    httpserver.expect_request(f"/item/{{i}}").respond_with_json(PAYLOAD)
    async with aiohttp.ClientSession({tls_client}) as session:
        url = httpserver.url_for(f"/item/{{i}}")
        assert await fetch_json(session, url) == PAYLOAD
""",
    "aiointercept": """
{param}async def test_get(i, aiointercept_mock):
    m = aiointercept_mock
    m.get(f"{{m.server_url}}/item/{{i}}", payload=PAYLOAD)
    async with aiohttp.ClientSession() as session:
        assert await fetch_json(session, f"{{m.server_url}}/item/{{i}}") == PAYLOAD
""",
    "aioresponses": """
from aioresponses import aioresponses


{param}async def test_get(i):
    url = f"http://{{HOST}}/item/{{i}}"
    with aioresponses() as m:
        m.get(url, payload=PAYLOAD)
        async with aiohttp.ClientSession() as session:
            assert await fetch_json(session, url) == PAYLOAD
""",
}

HTTPS_OVERRIDE_HTTPSERVER = """
@pytest.fixture(scope="session")
def httpserver_ssl_context(bench_server_ssl):
    return bench_server_ssl
"""

TRIVIAL = """
{param}async def test_trivial(i):
    assert i >= 0
"""

# Scenario 5: a realistic suite (HTTP and HTTPS servers on free ports, files in tmp_path).
SCALE_OUT = """
import json


{param}async def test_item(i, case_controlled_server_factory, aiohttp_redirector, tmp_path):
    scheme, port = ("https", 443) if i % 10 == 0 else ("http", 80)
    server = await case_controlled_server_factory(scheme=scheme)
    aiohttp_redirector.add_server(HOST, port, server)
    task = asyncio.create_task(fetch_json(aiohttp_redirector.session, f"{{scheme}}://{{HOST}}/{{i}}"))
    request = await server.receive_request()
    assert request.path == f"/{{i}}"
    server.send_json(request, {{"i": i}})
    assert await task == {{"i": i}}
    out = tmp_path / "answer.json"
    assert not out.exists()
    out.write_text(json.dumps({{"i": i, "port": server.port}}))
    assert json.loads(out.read_text())["i"] == i
"""


@dataclass(frozen=True)
class Variant:
    """One generated test directory: a tool, a scheme, a number of tests."""

    name: str
    body: str


def http_variant(tool: str, scheme: str) -> Variant:
    """The scenario 1/2 variant of ``tool`` over ``scheme``."""
    https = scheme == "https"
    fields = {
        "scheme": scheme,
        "port": "443" if https else "80",
        "tls_fixture": ", bench_server_ssl, bench_client_ssl" if https else "",
        "tls_server": ", ssl=bench_server_ssl" if https else "",
        "tls_client": "connector=aiohttp.TCPConnector(ssl=bench_client_ssl)" if https else "",
        "tls_override": HTTPS_OVERRIDE_HTTPSERVER if https else "",
    }
    if tool == "pytest-httpserver" and https:
        fields["tls_fixture"] = ", bench_client_ssl"
    if tool == "pytest-aiohttp" and https:
        fields["tls_fixture"] = ", bench_server_ssl, bench_client_ssl"
    return Variant(f"{tool} ({scheme})" if https else tool, render(BODIES[tool], **fields))


def render(template: str, **fields: str) -> str:
    """Fill ``template``'s fields, keeping ``{param}`` for :func:`write_suite`."""
    return template.replace("{param}", "{{param}}").format(**fields)


def write_suite(directory: Path, body: str, n: int) -> Path:
    """Write a runnable test directory with ``n`` tests of ``body``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(INI)
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "bench_client.py").write_text(CLIENT)
    text = HEADER + body.replace("{param}", PARAM.format(n=n))
    (directory / "test_bench.py").write_text(text)
    return directory
