"""The bottom layer: timeouts, the test certificate authority and socket helpers.

Nothing here imports from the layers above (``_loop``, ``_servers``, ``_network``).

The TLS helpers (``_tls``: trustme, cryptography) are imported when one of their
names is first used (:pep:`562`): the pytest plugin's hooks need none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._local_ports import process_listens_on
from ._method_patches import (
    WRAPPER_FILENAME,
    patch_method,
    patch_methods,
    restore_classes,
    set_instance_attribute,
    wrap_methods,
)
from ._sockets import (
    CLOSE_TIMEOUT,
    TRANSPORT_NAMES,
    abort_with_reset,
    new_socket_path,
    remove_socket,
    select_transports,
    wait_all,
)
from ._timeouts import (
    DEFAULT_TIMEOUT,
    check_timeout,
    get_within,
    record_hint,
    record_refusal,
    reset_refusals,
    set_virtual_time,
    timeout_details,
)

if TYPE_CHECKING:
    from ._tls import (
        CertificateAuthority,
        client_context,
        default_certificate_authority,
        leaf_certificate,
        server_context,
        shared_client_context,
        shared_server_context,
        shared_sni_server_context,
        sni_server_context,
    )

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "TRANSPORT_NAMES",
    "WRAPPER_FILENAME",
    "CertificateAuthority",
    "abort_with_reset",
    "check_timeout",
    "client_context",
    "default_certificate_authority",
    "get_within",
    "leaf_certificate",
    "new_socket_path",
    "patch_method",
    "patch_methods",
    "process_listens_on",
    "record_hint",
    "record_refusal",
    "remove_socket",
    "reset_refusals",
    "restore_classes",
    "select_transports",
    "server_context",
    "set_instance_attribute",
    "set_virtual_time",
    "shared_client_context",
    "shared_server_context",
    "shared_sni_server_context",
    "sni_server_context",
    "timeout_details",
    "wait_all",
    "wrap_methods",
]

_LAZY = frozenset(
    (
        "CertificateAuthority",
        "client_context",
        "default_certificate_authority",
        "leaf_certificate",
        "server_context",
        "shared_client_context",
        "shared_server_context",
        "shared_sni_server_context",
        "sni_server_context",
    )
)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("._tls", __name__), name)
    globals()[name] = value
    return value
