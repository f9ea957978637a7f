"""NetworkTestCase and NetworkAioHTTPTestCase, under unittest and under pytest."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import unittest
import warnings
from pathlib import Path
from typing import Any

import pytest

from aiotestkit import (
    AiohttpRedirector,
    CaseControlledServerFactory,
    CaseControlledTestServer,
    HygieneWarning,
    NetworkTestCase,
    default_certificate_authority,
)

CASES = """
import asyncio
import ssl
import unittest

import aiohttp
from aiohttp import web

from aiotestkit import NetworkAioHTTPTestCase, NetworkTestCase


async def get_time(session):
    async with session.get("https://api.kraken.com/0/public/Time") as response:
        return (await response.json())["result"]["unixtime"]


class TestNetwork(NetworkTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.server = await self.case_controlled_server_factory(scheme="https")

    async def test_redirected_https_request(self):
        self.aiohttp_redirector.add_server("api.kraken.com", 443, self.server)
        task = asyncio.create_task(get_time(self.aiohttp_redirector.session))
        request = await self.server.receive_request()
        self.assertEqual(request.path_qs, "/0/public/Time")
        self.server.send_json(request, {"error": [], "result": {"unixtime": 1700000000}})
        self.assertEqual(await task, 1700000000)

    async def test_ssl_contexts_make_a_verified_handshake(self):
        async def serve(reader, writer):
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self.ssl_ctx)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=self.client_ssl_ctx
            )
            writer.write(b"hello\\n")
            self.assertEqual(await reader.readline(), b"hello\\n")
            self.assertIsNotNone(writer.get_extra_info("peercert"))
            writer.close()
            await writer.wait_closed()

    def test_unused_port(self):
        self.assertGreater(self.aiohttp_unused_port(), 0)


class TestRefusedHandshake(NetworkTestCase):
    # The server side of a refused handshake reports its error to the loop.
    hygiene_checks = {"unretrieved_exceptions": "off"}

    async def test_client_context_refuses_an_untrusted_server(self):
        untrusted = self.tls_certificate_authority.untrusted_server_context()
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=untrusted)
        async with server:
            port = server.sockets[0].getsockname()[1]
            with self.assertRaises(ssl.SSLCertVerificationError):
                await asyncio.open_connection("127.0.0.1", port, ssl=self.client_ssl_ctx)


class TestSandboxAndClock(NetworkTestCase):
    use_virtual_clock = True

    async def test_unmodified_client_reaches_a_routed_host_over_tls(self):
        server = await self.case_controlled_server_factory()
        await self.network_sandbox.route("api.example.com", 443, server)
        async with aiohttp.ClientSession() as session:  # no injected session
            task = asyncio.create_task(session.get("https://api.example.com/v1/items"))
            request = await server.receive_request()
            self.assertEqual(request.host, "api.example.com")
            self.assertEqual(request.path_qs, "/v1/items")
            server.send_json(request, {"items": []})
            async with await task as response:
                self.assertEqual(await response.json(), {"items": []})

    async def test_time_is_virtual(self):
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(3600)
        self.assertGreaterEqual(loop.time() - before, 3600)
        self.assertTrue(self.clock.attached)


class TestAllowBlocked(NetworkTestCase):
    allow_blocked = True

    async def test_an_unrouted_host_is_refused(self):
        from aiotestkit import NetworkAccessDenied

        with self.assertRaisesRegex(NetworkAccessDenied, "refused by the network sandbox"):
            await asyncio.open_connection("blocked.invalid", 443)
        self.assertEqual(len(self.network_sandbox.blocked), 1)


async def hello(request):
    return web.Response(text="Hello, world")


class TestHelloPlain(NetworkAioHTTPTestCase):
    async def get_application(self):
        app = web.Application()
        app.router.add_get("/", hello)
        return app

    async def test_hello(self):
        async with self.client.get("/") as response:
            self.assertEqual(response.url.scheme, "http")
            self.assertEqual(await response.text(), "Hello, world")
        self.assertFalse(self.aiohttp_redirector.session.closed)


class TestHelloTls(TestHelloPlain):
    use_tls = True
    hygiene_checks = {"unretrieved_exceptions": "off"}  # the refused handshake

    async def test_hello(self):
        async with self.client.get("/") as response:
            self.assertEqual(response.url.scheme, "https")
            self.assertEqual(await response.text(), "Hello, world")

    async def test_a_client_without_the_test_ca_is_refused(self):
        async with aiohttp.ClientSession() as session:
            with self.assertRaises(aiohttp.ClientConnectorCertificateError):
                await session.get(self.client.make_url("/"))


if __name__ == "__main__":
    unittest.main()
"""


def test_cases_pass_under_python_m_unittest(tmp_path: Path) -> None:
    (tmp_path / "test_network_cases.py").write_text(textwrap.dedent(CASES))
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "unittest", "-v", "test_network_cases"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Ran 10 tests" in result.stderr
    # The virtual clock leaves no bogus slow-step report of asyncio's debug mode: its jump
    # of an hour is not a step that took an hour. (A loaded machine may still make a
    # real step take over 0.1 s, which asyncio reports truthfully.)
    slow_steps = [
        float(s) for s in re.findall(r"Executing <Task.* took ([0-9.]+) seconds", result.stderr)
    ]
    assert all(seconds < 60 for seconds in slow_steps), result.stderr
    assert result.stderr.rstrip().endswith("OK")


def test_cases_pass_under_pytest(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
    )
    pytester.makepyfile(test_network_cases=textwrap.dedent(CASES))
    pytester.runpytest_subprocess().assert_outcomes(passed=10)


def _run(case: unittest.TestCase) -> unittest.TestResult:
    result = unittest.TestResult()
    case.run(result)
    return result


class _Recorder(NetworkTestCase):
    __test__ = False  # run by the tests below, not collected by pytest
    seen: dict[str, Any] = {}  # noqa: RUF012

    async def test_passes(self) -> None:
        self.seen["server"] = await self.case_controlled_server_factory()
        self.seen["redirector"] = self.aiohttp_redirector

    async def test_fails(self) -> None:
        self.seen["server"] = await self.case_controlled_server_factory()
        self.seen["redirector"] = self.aiohttp_redirector
        self.fail("the test failed")


@pytest.mark.parametrize("method", ["test_passes", "test_fails"])
def test_resources_are_closed_after_the_test_passed_or_failed(method: str) -> None:
    _Recorder.seen.clear()
    result = _run(_Recorder(method))
    assert len(result.failures) == (method == "test_fails")
    assert result.errors == []
    server = _Recorder.seen["server"]
    assert isinstance(server, CaseControlledTestServer)
    assert server.closed
    redirector = _Recorder.seen["redirector"]
    assert isinstance(redirector, AiohttpRedirector)
    with pytest.raises(RuntimeError, match="not open"):
        redirector.session  # noqa: B018


class _Unanswered(NetworkTestCase):
    __test__ = False

    async def test_leaves_a_request_unanswered(self) -> None:
        import asyncio

        import aiohttp

        server = await self.case_controlled_server_factory()
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(session.get(server.make_url("/orders")))
            await server.receive_request()
            await server.close()
            with pytest.raises(aiohttp.ClientError):
                await task


def test_a_server_closed_with_requests_pending_fails_the_hygiene_check() -> None:
    result = _run(_Unanswered("test_leaves_a_request_unanswered"))
    assert len(result.failures) == 1, result.errors
    message = result.failures[0][1]
    assert "HygieneError" in message
    assert "1 unanswered request(s): GET /orders" in message


def test_attributes_come_from_the_same_objects_as_the_fixtures() -> None:
    class Case(NetworkTestCase):
        async def test_it(self) -> None:
            assert self.tls_certificate_authority is default_certificate_authority()
            assert isinstance(self.case_controlled_server_factory, CaseControlledServerFactory)
            assert self.tls_certificate is self.tls_certificate_authority.leaf_certificate()

    result = _run(Case("test_it"))
    assert result.wasSuccessful(), result.failures + result.errors


def test_fixture_is_the_same_factory_class(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pytest
        from aiotestkit import CaseControlledServerFactory

        @pytest.mark.asyncio
        async def test_it(case_controlled_server_factory):
            assert isinstance(case_controlled_server_factory, CaseControlledServerFactory)
        """
    )
    pytester.runpytest_subprocess("-W", "error").assert_outcomes(passed=1)


def test_closed_factory_refuses_to_start_servers() -> None:
    import asyncio

    async def scenario() -> None:
        factory = CaseControlledServerFactory(CaseControlledTestServer)
        server = await factory(scheme="https")
        assert factory.servers == [server]
        await factory.close()
        assert server.closed
        await factory.close()  # again: nothing
        with pytest.raises(RuntimeError, match="is closed: it starts servers only during"):
            await factory()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(scenario())


def test_an_override_that_skips_super_asyncsetup_is_told_how_to_fix_it() -> None:
    class Case(NetworkTestCase):
        async def asyncSetUp(self) -> None:
            pass

        async def test_it(self) -> None:
            self.aiohttp_redirector  # noqa: B018

    result = _run(Case("test_it"))
    assert len(result.errors) == 1
    message = result.errors[0][1]
    assert (
        "RuntimeError: self.aiohttp_redirector is not set up: Case.asyncSetUp() did not run "
        "NetworkTestCase.asyncSetUp(); an asyncSetUp() override must start with "
        "'await super().asyncSetUp()'"
    ) in message


class _Blocked(NetworkTestCase):
    __test__ = False

    async def test_reaches_for_the_network(self) -> None:
        import asyncio

        with pytest.raises(OSError, match=r"blocked\.invalid"):
            await asyncio.open_connection("blocked.invalid", 443)


def test_a_refused_connection_fails_the_test_in_its_hygiene_report() -> None:
    result = _run(_Blocked("test_reaches_for_the_network"))
    assert len(result.failures) == 1, result.errors
    message = result.failures[0][1]
    # reported with the hygiene checks, as under the network_sandbox fixture
    assert "aiotestkit.errors.HygieneError" in message
    assert "network access refused by the sandbox (refused_connections, 1)" in message
    assert "connection to blocked.invalid:443 refused by the network sandbox" in message
    assert "allow_blocked = True on _Blocked" in message


def test_opting_out_of_the_sandbox_and_into_the_clock_is_explicit() -> None:
    class Case(NetworkTestCase):
        use_network_sandbox = False

        async def test_it(self) -> None:
            with pytest.raises(RuntimeError, match="sets use_network_sandbox = False, so it has"):
                self.network_sandbox  # noqa: B018
            with pytest.raises(RuntimeError, match="set use_virtual_clock = True on the class"):
                self.clock  # noqa: B018

    result = _run(Case("test_it"))
    assert result.wasSuccessful(), result.failures + result.errors


class _LeavesATask(NetworkTestCase):
    __test__ = False

    async def test_leaves_a_task(self) -> None:
        import asyncio

        self.task = asyncio.get_running_loop().create_task(asyncio.sleep(3600))


def test_hygiene_checks_run_at_tear_down_with_the_fixtures_modes() -> None:
    result = _run(_LeavesATask("test_leaves_a_task"))
    assert len(result.failures) == 1, result.errors
    message = result.failures[0][1]
    assert "aiotestkit.errors.HygieneError" in message
    assert "test_leaves_a_task left 1 hygiene problem(s) behind" in message
    assert "pending_tasks" in message
    assert (
        "A known problem can be allowed for the tests of _LeavesATask with the class "
        "attribute hygiene_checks = {'pending_tasks': 'off'}."
    ) in message
    assert "pytest" not in message  # unittest's advice, not the plugin's markers

    class Allowed(_LeavesATask):
        hygiene_checks = {"pending_tasks": "off"}  # noqa: RUF012

    allowed = _run(Allowed("test_leaves_a_task"))
    assert allowed.wasSuccessful(), allowed.failures + allowed.errors


def test_loop_instrumentation_is_the_one_watching_the_test() -> None:
    from aiotestkit import LoopInstrumentation

    class Case(NetworkTestCase):
        async def test_it(self) -> None:
            import asyncio

            assert isinstance(self.loop_instrumentation, LoopInstrumentation)
            assert self.loop_instrumentation.loop is asyncio.get_running_loop()

    result = _run(Case("test_it"))
    assert result.wasSuccessful(), result.failures + result.errors


def test_refusals_are_a_hygiene_check_with_its_modes() -> None:
    class Warned(_Blocked):
        hygiene_checks = {"refused_connections": "warn"}  # noqa: RUF012

    with pytest.warns(HygieneWarning, match="refused_connections"):
        result = _run(Warned("test_reaches_for_the_network"))
    assert result.wasSuccessful(), result.failures + result.errors


def test_stream_and_websocket_server_factories_close_their_servers() -> None:
    seen: dict[str, Any] = {}

    class Case(NetworkTestCase):
        async def test_it(self) -> None:
            seen["stream"] = await self.case_controlled_stream_server_factory(transport="tcp")
            seen["websocket"] = await self.case_controlled_websocket_server_factory()

    result = _run(Case("test_it"))
    assert result.wasSuccessful(), result.failures + result.errors
    assert type(seen["stream"]).__name__ == "CaseControlledStreamServer"
    assert type(seen["websocket"]).__name__ == "CaseControlledWebSocketServer"
    assert seen["websocket"].closed


class _Hangs(NetworkTestCase):
    __test__ = False
    hang_timeout = 0.2

    async def test_hangs(self) -> None:
        import asyncio

        await asyncio.Event().wait()


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="3.10 runs every test of a case in one shared task"
)
def test_the_hang_guard_cancels_a_hanging_test_method_and_says_how_to_change_it() -> None:
    result = _run(_Hangs("test_hangs"))
    assert len(result.errors) == 1, result.failures
    message = result.errors[0][1]
    assert "aiotestkit.errors.HangTimeout" in message
    assert "still ran after 0.2 s, so the hang guard cancelled it" in message
    assert "hang_timeout = seconds on _Hangs (None turns the guard off)" in message


def test_an_invalid_class_attribute_names_it() -> None:
    class Typo(NetworkTestCase):
        __test__ = False
        hang_timeout = -1

        async def test_it(self) -> None:
            pass

    result = _run(Typo("test_it"))
    assert len(result.errors) == 1
    assert (
        "Typo.hang_timeout: expected seconds >= 0 (0 turns it off), got -1"
        in (result.errors[0][1])
    )
