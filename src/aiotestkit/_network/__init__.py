"""The network layer: the fake resolver, the redirector, the sandbox and the transports.

It routes clients to the servers of the layer below and refuses everything else.
"""

from ._proxy import HTTPProxy
from ._redirector import AiohttpRedirector
from ._resolver import FakeResolver
from ._routes import BlockedConnection, UnverifiedTLSConnection
from ._sandbox import NetworkSandbox
from ._transport import TransportContext

__all__ = [
    "AiohttpRedirector",
    "BlockedConnection",
    "FakeResolver",
    "HTTPProxy",
    "NetworkSandbox",
    "TransportContext",
    "UnverifiedTLSConnection",
]
