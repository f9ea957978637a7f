"""The TLS client side of a routed connection: the client's context, trusting the test CA."""

from __future__ import annotations

import ssl
import weakref
from typing import Any

from .._core import CertificateAuthority

__all__ = ["trusting_context"]

_TrustSettings = tuple[ssl.VerifyMode, bool, ssl.VerifyFlags, ssl.Options, Any, Any]
_client_contexts: weakref.WeakKeyDictionary[
    CertificateAuthority, dict[_TrustSettings, ssl.SSLContext]
] = weakref.WeakKeyDictionary()


def trusting_context(authority: CertificateAuthority, like: ssl.SSLContext) -> ssl.SSLContext:
    """A client context that trusts ``authority``, with ``like``'s verification settings."""
    settings: _TrustSettings = (
        like.verify_mode,
        like.check_hostname,
        like.verify_flags,
        like.options,
        like.minimum_version,
        like.maximum_version,
    )
    cache = _client_contexts.setdefault(authority, {})
    context = cache.get(settings)
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = like.check_hostname
        context.verify_mode = like.verify_mode
        context.verify_flags = like.verify_flags
        context.options = like.options
        context.minimum_version = like.minimum_version
        context.maximum_version = like.maximum_version
        authority.configure_trust(context)
        cache[settings] = context
    return context
