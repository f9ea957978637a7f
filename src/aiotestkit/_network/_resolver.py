"""A fake DNS resolver for aiohttp that sends chosen host names to local test servers."""

from __future__ import annotations

import functools
import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from ..errors import NetworkAccessDenied

__all__ = ["FakeResolver", "normalize_host"]


def normalize_host(host: str | bytes) -> str:
    """Return ``host`` in the form used to compare host names.

    Host names compare case-insensitively, without a trailing dot, in their ASCII
    (IDNA) form; IP addresses in their compressed form.

    Args:
        host: a host name or IP address, as str or ASCII bytes.

    Returns:
        The normalized host name.

    Raises:
        TypeError: if ``host`` is not str or bytes.
        ValueError: if ``host`` is empty or not a valid host name.

    Example:
        ```python
        assert normalize_host("API.Example.com.") == "api.example.com"
        assert normalize_host("bücher.example") == "xn--bcher-kva.example"
        ```
    """
    if isinstance(host, bytes):
        host = host.decode("ascii")
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, got {type(host).__name__}")
    return _normalize(host)


@functools.lru_cache(maxsize=1024)
def _normalize(host: str) -> str:
    """:func:`normalize_host` of a str, cached: a routed test asks for the same few names.

    Only results are cached; a name that is not valid raises each time.
    """
    stripped = host.strip("[]").rstrip(".")
    if not stripped:
        raise ValueError(f"host must be a host name or IP address, got {host!r}")
    try:
        return str(ipaddress.ip_address(stripped))
    except ValueError:
        pass
    try:
        return stripped.encode("idna").decode("ascii").lower()
    except UnicodeError as error:
        raise ValueError(f"{host!r} is not a valid host name: {error}") from None


def _check_port(name: str, port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{name} must be an int, got {port!r}")
    if not 0 < port < 65536:
        raise ValueError(f"{name} must be between 1 and 65535, got {port}")
    return port


def _target_address(host: str) -> tuple[str, socket.AddressFamily]:
    """A target's IP address in compressed form and its family; cached for str.

    Raises:
        ValueError: if ``host`` is not an IP address (raised each time: not cached).
    """
    return _parsed_target(host) if isinstance(host, str) else _parse_target(host)


def _parse_target(host: str) -> tuple[str, socket.AddressFamily]:
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"target_host must be an IP address, got {host!r}") from None
    return str(parsed), socket.AF_INET6 if parsed.version == 6 else socket.AF_INET


_parsed_target = functools.lru_cache(maxsize=256)(_parse_target)
""":func:`_parse_target` cached: a run adds servers on one or two addresses."""


class FakeResolver(AbstractResolver):
    """An aiohttp resolver that resolves only the host names a test added.

    Give it to :class:`aiohttp.TCPConnector` (``resolver=``, with
    ``use_dns_cache=False``): a request to ``https://api.example.com/`` then reaches the
    local test server added for ``api.example.com:443``, and the client still uses
    ``api.example.com`` for TLS (SNI and certificate check) and the ``Host`` header.
    Any other host fails as an unreachable one would.

    Example:
        ```python
        resolver = FakeResolver()
        resolver.add("api.example.com", 443, server.port)
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        ```
    """

    def __init__(self) -> None:
        # (host, port) -> (address, port, family): the family found once, at add()
        self._targets: dict[tuple[str, int], tuple[str, int, socket.AddressFamily]] = {}

    def add(
        self, host: str, port: int, target_port: int, *, target_host: str = "127.0.0.1"
    ) -> None:
        """Resolve ``host:port`` to ``target_host:target_port`` from now on.

        Args:
            host: the host name clients use (str); compared case-insensitively.
            port: the TCP port clients use (int, 1-65535), e.g. 443 for ``https://``.
            target_port: the port of the local test server (int, 1-65535).
            target_host: the IP address of the test server (str).

        Raises:
            TypeError: if a port is not an int or a host not a str.
            ValueError: if a port is out of range, ``host`` is empty, or
                ``target_host`` is not an IP address.

        Example:
            ```python
            resolver.add("api.kraken.com", 443, server.port)
            ```
        """
        key = (normalize_host(host), _check_port("port", port))
        address, family = _target_address(target_host)
        self._targets[key] = (address, _check_port("target_port", target_port), family)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Return the test server added for ``host:port``.

        Args:
            host: the host name to resolve.
            port: the TCP port the client connects to.
            family: ignored: the result has the family of the target address.

        Returns:
            One :class:`aiohttp.abc.ResolveResult` pointing at the test server.

        Raises:
            aiotestkit.NetworkAccessDenied: (an :class:`OSError`) if nothing was added
                for ``host:port``; the message shows the :meth:`add` call that would.

        Example:
            ```python
            [result] = await resolver.resolve("api.kraken.com", 443)
            assert (result["host"], result["port"]) == ("127.0.0.1", 40123)
            ```
        """
        try:
            address, target_port, target_family = self._targets[normalize_host(host), port]
        except KeyError:
            raise NetworkAccessDenied(
                f"no test server is known for {host}:{port}; add one with "
                f"add({host!r}, {port}, server.port)",
                host=host,
                port=port,
            ) from None
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=target_port,
                family=target_family,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Release nothing: the resolver holds no resources. Part of aiohttp's interface.

        Example:
            ```python
            await resolver.close()
            ```
        """
