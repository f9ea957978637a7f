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

# Records, into the JSON file named by BENCH_RESULT (written by the controller only under
# xdist): the outcomes; per test, pytest's set-up, call and teardown durations and the wall
# and CPU time of the test's whole run protocol (set-up, call, teardown, reporting), as means
# over the tests without the first and the last (which carry the session's set-up and
# teardown, e.g. a session-scoped CA or server thread, differently for every tool); the
# resolver class aiohttp's default connector uses; and, when BENCH_MEMORY_EVERY is set, the
# resident set size after every that-many tests (after a gc.collect()).
CONFTEST = """\
import gc
import json
import os
import ssl
import time

import pytest

_OUTCOMES = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
_PHASE_INDEX = {"setup": 0, "call": 1, "teardown": 2}
_CURRENT = {}  # nodeid -> [setup, call, teardown] seconds, until the protocol ends
_TESTS = []  # per test: [setup, call, teardown, protocol wall, protocol CPU] seconds
_MEMORY_EVERY = int(os.environ.get("BENCH_MEMORY_EVERY") or 0)
_RSS = []
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _TESTS.append([*_CURRENT.pop(item.nodeid, [0.0, 0.0, 0.0]), wall, cpu])
    if _MEMORY_EVERY and len(_TESTS) % _MEMORY_EVERY == 0:
        gc.collect()
        _RSS.append([len(_TESTS), _rss_bytes()])


def pytest_runtest_logreport(report):
    _CURRENT.setdefault(report.nodeid, [0.0, 0.0, 0.0])[_PHASE_INDEX[report.when]] += (
        report.duration
    )
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
    if not path:
        return
    import aiohttp.connector

    used = _TESTS[1:-1] if len(_TESTS) >= 3 else _TESTS
    keys = ("setup", "call", "teardown", "wall", "cpu")
    per_test = {
        key: sum(test[k] for test in used) / len(used) if used else 0.0
        for k, key in enumerate(keys)
    }
    per_test["tests"] = len(used)
    with open(path, "w") as f:
        json.dump(
            {
                "outcomes": _OUTCOMES,
                "per_test": per_test,
                "rss": _RSS,
                "resolver": aiohttp.connector.DefaultResolver.__name__,
            },
            f,
        )


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
    # The one client context of the session, shared by every test (and, for httpx, passed as
    # verify=, so that no client loads certifi's bundle).
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


async def fetch_json_httpx(client, url):
    # The same for httpx: one GET, the status checked, the JSON decoded.
    response = await client.get(url)
    response.raise_for_status()
    return response.json()
"""

HEADER = """\
import asyncio

import aiohttp
import pytest

from bench_client import HOST, PAYLOAD, fetch_json, fetch_json_httpx

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
    "aiotestkit-aioresponses": """
from aiotestkit.compat.aioresponses import aioresponses


@pytest.mark.network_sandbox
{param}async def test_get(i):
    url = f"{scheme}://{{HOST}}/item/{{i}}"
    with aioresponses() as m:
        m.get(url, payload=PAYLOAD)
        async with aiohttp.ClientSession({tls_client}) as session:
            assert await fetch_json(session, url) == PAYLOAD
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

# The httpx group: every client is ``httpx.AsyncClient(verify=bench_client_ssl)``, the one
# SSL context of the session, so that no variant pays for loading certifi's CA bundle per
# client (``verify=True`` builds a new context from certifi for every client).
HTTPX_BODIES: dict[str, str] = {
    "baseline": BODIES["baseline"],
    "respx": """
import httpx
import respx


{param}async def test_get(i, bench_client_ssl):
    url = f"{scheme}://{{HOST}}/item/{{i}}"
    with respx.mock(assert_all_called=True) as router:
        router.get(url).mock(return_value=httpx.Response(200, json=PAYLOAD))
        async with httpx.AsyncClient(verify=bench_client_ssl) as client:
            assert await fetch_json_httpx(client, url) == PAYLOAD
""",
    "pytest-httpx": """
import httpx


{param}async def test_get(i, httpx_mock, bench_client_ssl):
    url = f"{scheme}://{{HOST}}/item/{{i}}"
    httpx_mock.add_response(url=url, json=PAYLOAD)
    async with httpx.AsyncClient(verify=bench_client_ssl) as client:
        assert await fetch_json_httpx(client, url) == PAYLOAD
""",
    "aiotestkit-httpx-mock": """
import httpx


{param}async def test_get(i, aiotestkit_httpx_mock, bench_client_ssl):
    url = f"{scheme}://{{HOST}}/item/{{i}}"
    aiotestkit_httpx_mock.add_response(url=url, json=PAYLOAD)
    async with httpx.AsyncClient(verify=bench_client_ssl) as client:
        assert await fetch_json_httpx(client, url) == PAYLOAD
""",
    "pytest-httpserver": """
import httpx
{tls_override}

{param}async def test_get(i, httpserver, bench_client_ssl):
    httpserver.expect_request(f"/item/{{i}}").respond_with_json(PAYLOAD)
    async with httpx.AsyncClient(verify=bench_client_ssl) as client:
        assert await fetch_json_httpx(client, httpserver.url_for(f"/item/{{i}}")) == PAYLOAD
""",
    "aiotestkit-sandbox": """
import httpx


{param}async def test_get(i, case_controlled_server, network_sandbox, bench_client_ssl):
    await network_sandbox.route(HOST, {port}, case_controlled_server)

    async def client():
        async with httpx.AsyncClient(verify=bench_client_ssl) as client:
            return await fetch_json_httpx(client, f"{scheme}://{{HOST}}/item/{{i}}")

    task = asyncio.create_task(client())
    request = await case_controlled_server.receive_request()
    case_controlled_server.send_json(request, PAYLOAD)
    assert await task == PAYLOAD
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

# The same without asyncio: the plugin must cost a sync test nothing.
TRIVIAL_SYNC = """
{param}def test_trivial(i):
    assert i >= 0
"""

# Scale-out: sandbox tests (an unmodified client, every tenth over HTTPS, a file in tmp_path).
SCALE_OUT = """
import json


{param}async def test_item(i, case_controlled_server, network_sandbox, tmp_path):
    scheme, port = ("https", 443) if i % 10 == 0 else ("http", 80)
    await network_sandbox.route(HOST, port, case_controlled_server)

    async def client():
        async with aiohttp.ClientSession() as session:
            return await fetch_json(session, f"{{scheme}}://{{HOST}}/{{i}}")

    task = asyncio.create_task(client())
    request = await case_controlled_server.receive_request()
    assert request.path == f"/{{i}}"
    case_controlled_server.send_json(request, {{"i": i}})
    assert await task == {{"i": i}}
    out = tmp_path / "answer.json"
    assert not out.exists()
    out.write_text(json.dumps({{"i": i, "port": case_controlled_server.port}}))
    assert json.loads(out.read_text())["i"] == i
"""

# The same test shape with pytest-aiohttp (a raw server per test, every tenth over HTTPS, a
# file in tmp_path), and an empty async test: what pytest-xdist gives tests that are not
# aiotestkit's, on the same machine in the same round.
SCALE_OUT_PYTEST_AIOHTTP = """
import json

from aiohttp import web


async def handler(request):
    return web.json_response({{"i": int(request.path[1:])}})


{param}async def test_item(i, aiohttp_raw_server, bench_server_ssl, bench_client_ssl, tmp_path):
    https = i % 10 == 0
    server = await aiohttp_raw_server(handler, ssl=bench_server_ssl if https else None)
    connector = aiohttp.TCPConnector(ssl=bench_client_ssl if https else True)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert await fetch_json(session, str(server.make_url(f"/{{i}}"))) == {{"i": i}}
    out = tmp_path / "answer.json"
    assert not out.exists()
    out.write_text(json.dumps({{"i": i, "port": server.port}}))
    assert json.loads(out.read_text())["i"] == i
"""

SCALE_OUT_EMPTY = """
{param}async def test_item(i):
    assert i >= 0
"""


@dataclass(frozen=True)
class Variant:
    """One generated test directory: a tool, a scheme, a number of tests."""

    name: str
    body: str


def http_variant(tool: str, scheme: str, client: str = "aiohttp") -> Variant:
    """The per-test variant of ``tool`` over ``scheme`` with ``client`` (aiohttp or httpx)."""
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
    bodies = HTTPX_BODIES if client == "httpx" else BODIES
    return Variant(f"{tool} ({client}, {scheme})", render(bodies[tool], **fields))


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
