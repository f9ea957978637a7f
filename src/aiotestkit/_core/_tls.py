"""The test certificate authority: real TLS for tests, on trustme.

Certificates are issued by :mod:`trustme`; this module only caches them and turns them
into ready :class:`ssl.SSLContext` objects, including a server context that picks its
certificate from the host name the client sends (SNI), so one server can stand in for
any host over verified TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
import weakref
from collections.abc import Callable

import trustme

__all__ = [
    "CertificateAuthority",
    "client_certificate",
    "client_context",
    "default_certificate_authority",
    "leaf_certificate",
    "server_context",
    "shared_client_context",
    "shared_server_context",
    "shared_sni_server_context",
    "sni_server_context",
]

_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def _normalize_hostname(hostname: str) -> str:
    """Return ``hostname`` in the form certificates and SNI use (IDNA, lower case)."""
    hostname = hostname.rstrip(".")
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    if not hostname.isascii():
        hostname = hostname.encode("idna").decode("ascii")
    return hostname.lower()


class _AuthorityCache:
    """What aiotestkit caches for one :class:`trustme.CA`: leaf certificates and contexts."""

    def __init__(self) -> None:
        self.leaf_certificates: dict[tuple[str, ...], trustme.LeafCert] = {}
        self.client_certificates: dict[str, trustme.LeafCert] = {}
        self.sni_contexts: dict[tuple[str, bool, tuple[str, ...]], ssl.SSLContext] = {}
        self.shared_contexts: dict[str, ssl.SSLContext] = {}
        self.lock = threading.Lock()


_caches: weakref.WeakKeyDictionary[trustme.CA, _AuthorityCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_of(authority: trustme.CA) -> _AuthorityCache:
    with _caches_lock:
        cache = _caches.get(authority)
        if cache is None:
            cache = _caches[authority] = _AuthorityCache()
        return cache


def leaf_certificate(authority: trustme.CA, *hostnames: str) -> trustme.LeafCert:
    """Return a certificate of ``authority`` for ``hostnames``, issued once and cached.

    Works with any :class:`trustme.CA`, so a project that defines its own
    ``tls_certificate_authority`` fixture with a plain ``trustme.CA()`` gets the same
    behaviour as with :class:`CertificateAuthority`.
    """
    names = tuple(_normalize_hostname(name) for name in (hostnames or _LOCAL_NAMES))
    if not all(names):
        raise ValueError(f"host names must not be empty, got {hostnames!r}")
    cache = _cache_of(authority)
    with cache.lock:
        leaf = cache.leaf_certificates.get(names)
        if leaf is None:
            leaf = authority.issue_cert(*names)
            cache.leaf_certificates[names] = leaf
        return leaf


def client_certificate(authority: trustme.CA, name: str) -> trustme.LeafCert:
    """Return a client certificate of ``authority`` for ``name``, issued once and cached."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a client certificate needs a non-empty name, got {name!r}")
    cache = _cache_of(authority)
    with cache.lock:
        leaf = cache.client_certificates.get(name)
        if leaf is None:
            leaf = authority.issue_cert(name, common_name=name)
            cache.client_certificates[name] = leaf
        return leaf


def server_context(
    authority: trustme.CA, *hostnames: str, require_client_certificate: bool = False
) -> ssl.SSLContext:
    """Return a new server context presenting ``authority``'s certificate for ``hostnames``.

    With ``require_client_certificate``, the handshake fails unless the client
    presents a certificate issued by ``authority``.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf_certificate(authority, *hostnames).configure_cert(context)
    if require_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        authority.configure_trust(context)
    return context


def sni_server_context(
    authority: trustme.CA,
    *,
    require_client_certificate: bool = False,
    alpn: tuple[str, ...] = (),
) -> ssl.SSLContext:
    """Return a new server context that picks a certificate of ``authority`` by SNI.

    ``alpn`` lists the protocols it offers (the per-host contexts it switches to
    offer them too: OpenSSL asks the switched-to context).
    """
    cache = _cache_of(authority)

    def select_certificate(
        ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        if not server_name:
            return
        key = (server_name, require_client_certificate, alpn)
        with cache.lock:
            context = cache.sni_contexts.get(key)
        if context is None:
            context = server_context(
                authority, server_name, require_client_certificate=require_client_certificate
            )
            if alpn:
                context.set_alpn_protocols(list(alpn))
            with cache.lock:
                context = cache.sni_contexts.setdefault(key, context)
        ssl_object.context = context

    context = server_context(authority, require_client_certificate=require_client_certificate)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    context.sni_callback = select_certificate
    return context


def client_context(authority: trustme.CA) -> ssl.SSLContext:
    """Return a new client context that trusts ``authority`` only, verification on."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    authority.configure_trust(context)
    return context


def _shared(
    authority: trustme.CA, name: str, build: Callable[[], ssl.SSLContext]
) -> ssl.SSLContext:
    # Building an SSLContext and loading a certificate into it costs about a
    # millisecond, paid per test when every server and client built its own. Nothing
    # in aiotestkit changes a shared context after building it.
    cache = _cache_of(authority)
    with cache.lock:
        context = cache.shared_contexts.get(name)
    if context is None:
        context = build()
        with cache.lock:
            context = cache.shared_contexts.setdefault(name, context)
    return context


def shared_client_context(authority: trustme.CA) -> ssl.SSLContext:
    """:func:`client_context`, built once per authority for aiotestkit's own clients."""
    return _shared(authority, "client", lambda: client_context(authority))


def shared_server_context(authority: trustme.CA) -> ssl.SSLContext:
    """:func:`server_context` for the loopback names, built once per authority."""
    return _shared(authority, "server", lambda: server_context(authority))


def shared_sni_server_context(authority: trustme.CA) -> ssl.SSLContext:
    """:func:`sni_server_context`, built once per authority for aiotestkit's own servers."""
    return _shared(authority, "sni_server", lambda: sni_server_context(authority))


class CertificateAuthority(trustme.CA):
    """A :class:`trustme.CA` that caches leaf certificates and builds SSL contexts.

    Leaf certificates are issued once per set of host names and reused, so a test
    suite pays for key generation once per host, not once per test. Every context it
    builds verifies certificates: nothing here turns verification off.

    It takes the arguments of :class:`trustme.CA` (for example ``key_type``).

    Example:
        ```python
        ca = CertificateAuthority()
        server_context = ca.server_context("api.example.com")
        client_context = ca.client_context()
        assert client_context.verify_mode == ssl.CERT_REQUIRED
        ```
    """

    def leaf_certificate(self, *hostnames: str) -> trustme.LeafCert:
        """Return a certificate for ``hostnames``, issued on first use and cached.

        Args:
            *hostnames: DNS names or IP addresses (str) the certificate is valid for;
                none means ``localhost``, ``127.0.0.1`` and ``::1``.

        Returns:
            The :class:`trustme.LeafCert`, the same object for the same names.

        Raises:
            ValueError: if a host name is empty.

        Example:
            ```python
            ca = CertificateAuthority()
            assert ca.leaf_certificate("a.example") is ca.leaf_certificate("A.example")
            ```
        """
        return leaf_certificate(self, *hostnames)

    def client_certificate(self, name: str) -> trustme.LeafCert:
        """Return a client certificate for ``name`` (mutual TLS), issued once and cached.

        Load it into a client's context with
        :meth:`trustme.LeafCert.configure_cert`; a server context from
        :meth:`sni_server_context` or :meth:`server_context` with
        ``require_client_certificate=True`` accepts it, and the server reads it
        with ``transport.get_extra_info("peercert")`` (``subject`` holds
        ``commonName`` ``name``).

        Args:
            name: the client's identity (str): the certificate's common name and
                subject alternative name, a DNS-style name (``"alice"``,
                ``"billing-service"``) or an e-mail address.

        Returns:
            The :class:`trustme.LeafCert`, the same object for the same name.

        Raises:
            ValueError: if ``name`` is empty or not a valid DNS name or e-mail address.

        Example:
            ```python
            context = ssl.create_default_context()
            ca.client_certificate("alice").configure_cert(context)
            ```
        """
        return client_certificate(self, name)

    def server_context(
        self, *hostnames: str, require_client_certificate: bool = False
    ) -> ssl.SSLContext:
        """Return a new server context that presents a certificate for ``hostnames``.

        Args:
            *hostnames: names the certificate is valid for; none means
                ``localhost``, ``127.0.0.1`` and ``::1``. To test that a client
                rejects a certificate for the wrong host, pass another name.
            require_client_certificate: fail the handshake of a client that
                presents no certificate of this authority (mutual TLS); see
                :meth:`client_certificate`.

        Returns:
            A fresh :class:`ssl.SSLContext` for ``ssl.PROTOCOL_TLS_SERVER``.

        Example:
            ```python
            ca = CertificateAuthority()
            assert ca.server_context("api.example.com").protocol == ssl.PROTOCOL_TLS_SERVER
            ```
        """
        return server_context(
            self, *hostnames, require_client_certificate=require_client_certificate
        )

    def sni_server_context(self, *, require_client_certificate: bool = False) -> ssl.SSLContext:
        """Return a server context that serves a certificate for whatever host the client asks.

        The certificate is chosen from the server name the client sends in the TLS
        handshake (SNI) and issued by this authority, so one server can stand in for
        ``api.example.com`` and ``www.example.org`` alike. A client that sends no
        name (it connected to an IP address) gets the certificate for ``localhost``,
        ``127.0.0.1`` and ``::1``.

        Args:
            require_client_certificate: fail the handshake of a client that
                presents no certificate of this authority (mutual TLS), e.g. one
                from :meth:`client_certificate`. The server reads the client's
                certificate with ``transport.get_extra_info("peercert")``.

        Returns:
            A fresh :class:`ssl.SSLContext` for ``ssl.PROTOCOL_TLS_SERVER``.

        Example:
            ```python
            ca = CertificateAuthority()
            assert ca.sni_server_context().sni_callback is not None
            context = ca.sni_server_context(require_client_certificate=True)
            assert context.verify_mode == ssl.CERT_REQUIRED
            ```
        """
        return sni_server_context(self, require_client_certificate=require_client_certificate)

    def client_context(self) -> ssl.SSLContext:
        """Return a new client context that trusts this authority and verifies host names.

        Returns:
            A fresh :class:`ssl.SSLContext` for ``ssl.PROTOCOL_TLS_CLIENT`` that trusts
            this authority only: ``verify_mode`` is ``CERT_REQUIRED`` and
            ``check_hostname`` is on. It does not load the system's trust store (which
            costs tens of milliseconds), since a test reaches only its own servers.

        Example:
            ```python
            assert CertificateAuthority().client_context().check_hostname
            ```
        """
        return client_context(self)

    def expired_server_context(self, *hostnames: str) -> ssl.SSLContext:
        """Return a server context whose certificate for ``hostnames`` expired a day ago.

        The certificate is issued by this (trusted) authority for the right names, so
        the only thing wrong with it is its validity period: a client that accepts it
        does not check expiry.

        Args:
            *hostnames: names the certificate is valid for; none means
                ``localhost``, ``127.0.0.1`` and ``::1``.

        Returns:
            A fresh :class:`ssl.SSLContext` for ``ssl.PROTOCOL_TLS_SERVER``.

        Example:
            ```python
            context = CertificateAuthority().expired_server_context("api.example.com")
            ```
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        leaf = self.issue_cert(
            *(hostnames or _LOCAL_NAMES),
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(context)
        return context

    def untrusted_server_context(self, *hostnames: str) -> ssl.SSLContext:
        """Return a server context whose certificate comes from an authority nobody trusts.

        The certificate is valid and for the right names, but issued by a second,
        unrelated authority: a client that accepts it does not verify the chain.

        Args:
            *hostnames: names the certificate is valid for; none means
                ``localhost``, ``127.0.0.1`` and ``::1``.

        Returns:
            A fresh :class:`ssl.SSLContext` for ``ssl.PROTOCOL_TLS_SERVER``.

        Example:
            ```python
            context = CertificateAuthority().untrusted_server_context("api.example.com")
            ```
        """
        return _untrusted_authority().server_context(*hostnames)


_default_authority: CertificateAuthority | None = None
_untrusted: CertificateAuthority | None = None
_default_lock = threading.Lock()


def default_certificate_authority() -> CertificateAuthority:
    """Return the process-wide test certificate authority, creating it on first use.

    Every aiotestkit server that is not given an SSL context, the
    ``tls_certificate_authority`` fixture and every client context aiotestkit builds
    share this authority, so they trust each other without configuration.

    Returns:
        The same :class:`CertificateAuthority` for the whole process.

    Example:
        ```python
        assert default_certificate_authority() is default_certificate_authority()
        ```
    """
    global _default_authority
    with _default_lock:
        if _default_authority is None:
            _default_authority = CertificateAuthority()
        return _default_authority


def _untrusted_authority() -> CertificateAuthority:
    global _untrusted
    with _default_lock:
        if _untrusted is None:
            _untrusted = CertificateAuthority()
        return _untrusted
