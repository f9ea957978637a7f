"""The TLS of routed connections: the client's own context, trusting the test authority.

A TLS client of a routed host keeps its own context for everything but trust: the
sandbox wraps the connection with the client's context (its ALPN protocols, server
name, verification mode and flags, protocol versions are set on the connection
then) and swaps in, before the handshake, a context that trusts the test
authority (``ssl_object.context = ...``, which changes the trust store and the
certificate the client presents, nothing else). So that a client certificate
survives the swap, the sandbox records the chains clients load
(:meth:`ssl.SSLContext.load_cert_chain`) while it is open and loads the same chain
into the context it swaps in.

The gateways that end TLS in front of a plain target present a certificate chosen
by SNI and offer the protocols that target speaks, so ALPN is negotiated as with
the real server.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import weakref
from collections.abc import Callable
from typing import Any

import trustme

from .._core import sni_server_context

__all__ = ["ChainRecorder", "sni_server_context_with_alpn", "trusting_context"]

Chain = tuple[bytes, bytes | None, bytes | None]
"""A client's certificate chain: certificate file, key file and password, as bytes."""


class ChainRecorder:
    """Remembers the certificate chain each client context loads, for :func:`trusting_context`."""

    def __init__(self) -> None:
        self._chains: weakref.WeakKeyDictionary[ssl.SSLContext, Chain] = (
            weakref.WeakKeyDictionary()
        )

    def wrap(self, original: Callable[..., None]) -> Callable[..., None]:
        """A ``load_cert_chain`` that calls ``original`` and records what it loaded."""
        recorder = self

        def load_cert_chain(
            context: ssl.SSLContext,
            certfile: Any,
            keyfile: Any = None,
            password: Any = None,
        ) -> None:
            original(context, certfile, keyfile, password)
            if callable(password):
                password = password()
            if isinstance(password, str):
                password = password.encode()
            with open(certfile, "rb") as cert:
                cert_bytes = cert.read()
            key_bytes = None
            if keyfile is not None:
                with open(keyfile, "rb") as key:
                    key_bytes = key.read()
            recorder._chains[context] = (cert_bytes, key_bytes, password)

        return load_cert_chain

    def chain_of(self, context: ssl.SSLContext) -> Chain | None:
        """The chain ``context`` loaded while recording, if any."""
        return self._chains.get(context)


_client_contexts: weakref.WeakKeyDictionary[trustme.CA, dict[Chain | None, ssl.SSLContext]] = (
    weakref.WeakKeyDictionary()
)


def trusting_context(authority: trustme.CA, chain: Chain | None) -> ssl.SSLContext:
    """A client context that trusts ``authority`` and presents ``chain`` (built once each).

    Swap it into a connection wrapped with the client's own context: the
    verification settings and ALPN list stay the client's.
    """
    cache = _client_contexts.setdefault(authority, {})
    context = cache.get(chain)
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        authority.configure_trust(context)
        if chain is not None:
            _load_chain(context, chain)
        context = cache.setdefault(chain, context)
    return context


def _load_chain(context: ssl.SSLContext, chain: Chain) -> None:
    cert, key, password = chain
    with tempfile.TemporaryDirectory(prefix="aiotestkit-") as directory:
        certfile = os.path.join(directory, "cert.pem")
        with open(certfile, "wb") as file:
            file.write(cert)
        keyfile = None
        if key is not None:
            keyfile = os.path.join(directory, "key.pem")
            with open(keyfile, "wb") as file:
                file.write(key)
        context.load_cert_chain(certfile, keyfile, password)


_server_contexts: weakref.WeakKeyDictionary[trustme.CA, dict[tuple[str, ...], ssl.SSLContext]] = (
    weakref.WeakKeyDictionary()
)


def sni_server_context_with_alpn(authority: trustme.CA, alpn: tuple[str, ...]) -> ssl.SSLContext:
    """A gateway's server context: certificates by SNI, offering ``alpn`` (built once).

    The gateway ends TLS on behalf of the route's target, so it offers the
    protocols that target speaks (``http/1.1`` for an aiohttp server, nothing for a
    raw stream): a client that asks for ``h2`` then negotiates HTTP/1.1, as it would
    with the real server.
    """
    # ``get`` first: ``setdefault`` makes a weak reference and a dict on every call.
    cache = _server_contexts.get(authority)
    if cache is None:
        cache = _server_contexts.setdefault(authority, {})
    context = cache.get(alpn)
    if context is None:
        context = cache.setdefault(alpn, sni_server_context(authority, alpn=alpn))
    return context
