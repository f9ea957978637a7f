"""The test server of a facade: one server for every mocked origin, routed in the sandbox."""

from __future__ import annotations

import asyncio

from aiohttp import web
from yarl import URL

from .._network import NetworkSandbox
from .._servers import CaseControlledTestServer, Expectation

__all__ = ["Origins", "hold", "host_header", "open_sandbox"]


def hold(expectation: Expectation) -> Expectation:
    """Answer with nothing: the client waits until its own timeout (the mocked timeout)."""

    async def never_answer(request: web.BaseRequest) -> web.StreamResponse:
        await asyncio.get_running_loop().create_future()  # cancelled when the server closes
        raise AssertionError("unreachable")

    return expectation.respond_with(never_answer)


def open_sandbox(facade: str) -> NetworkSandbox:
    """The sandbox the test opened; raises with how to open one if there is none."""
    sandbox = NetworkSandbox.current()
    if sandbox is None:
        raise RuntimeError(
            f"{facade} serves its mocks from test servers through the network sandbox, and "
            "none is open: turn it on for the suite with the ini option "
            "'aiotestkit_network_sandbox = true', or for one test with "
            "@pytest.mark.network_sandbox (or request the network_sandbox fixture)"
        )
    return sandbox


def host_header(url: URL) -> str:
    """The ``Host`` header clients send for ``url``: the port only when not the default."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return host if url.is_default_port() else f"{host}:{url.port}"


class Origins:
    """One server for every origin a facade mocks; each origin routed on first use.

    Requests of every origin reach the same server, so its log keeps their order;
    an expectation tells the origins apart by the ``Host`` header.
    """

    def __init__(self, sandbox: NetworkSandbox, facade: str) -> None:
        self.sandbox = sandbox
        self.facade = facade
        self.server = CaseControlledTestServer(unmatched="abort")
        self._routed: set[tuple[str, int]] = set()

    def route(self, url: URL) -> str:
        """Route ``url``'s origin to the server; return its ``Host`` header."""
        if not url.absolute or url.scheme not in ("http", "https") or url.host is None:
            raise ValueError(
                f"{self.facade}: {str(url)!r} is not an absolute http:// or https:// URL; "
                "a mock needs the host it stands for"
            )
        assert url.port is not None  # yarl gives the scheme's default
        key = (url.host, url.port)
        if key not in self._routed:
            self.sandbox.route_nowait(url.host, url.port, self.server)
            self._routed.add(key)
        return host_header(url)
