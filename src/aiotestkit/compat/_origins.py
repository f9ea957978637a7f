"""One server per origin (scheme, host, port), routed in the open network sandbox."""

from __future__ import annotations

from yarl import URL

from .._network import NetworkSandbox
from .._servers import CaseControlledTestServer

__all__ = ["Origins", "open_sandbox"]


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


class Origins:
    """The test servers of one facade, one per origin, made on first use."""

    def __init__(self, sandbox: NetworkSandbox, facade: str) -> None:
        self.sandbox = sandbox
        self.facade = facade
        self._servers: dict[tuple[str, str, int], CaseControlledTestServer] = {}

    def server_for(self, url: URL) -> CaseControlledTestServer:
        """The server of ``url``'s origin, routed from the first connection on."""
        if not url.absolute or url.scheme not in ("http", "https") or url.host is None:
            raise ValueError(
                f"{self.facade}: {str(url)!r} is not an absolute http:// or https:// URL; "
                "a mock needs the host it stands for"
            )
        port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
        key = (url.scheme, url.host, port)
        server = self._servers.get(key)
        if server is None:
            server = CaseControlledTestServer(unmatched="abort")
            self.sandbox.route_nowait(url.host, port, server)
            self._servers[key] = server
        return server

    def origin_of(self, server: CaseControlledTestServer) -> str:
        """``scheme://host:port`` of ``server``'s origin, as its clients address it."""
        for (scheme, host, port), known in self._servers.items():
            if known is server:
                return str(URL.build(scheme=scheme, host=host, port=port))
        raise LookupError(server)

    @property
    def servers(self) -> list[CaseControlledTestServer]:
        """Every server made so far, in order."""
        return list(self._servers.values())
