"""The servers layer: the case-controlled HTTP, stream and WebSocket servers.

It builds on ``_core`` and ``_loop``; the network layer above routes clients to these
servers.
"""

from ._expectations import Expectation
from ._factory import CaseControlledServerFactory
from ._http import CaseControlledTestServer
from ._response_stream import ResponseStream
from ._stream import CaseControlledStreamServer, StreamConnection
from ._websocket import CaseControlledWebSocketServer, WebSocketConnection

__all__ = [
    "CaseControlledServerFactory",
    "CaseControlledStreamServer",
    "CaseControlledTestServer",
    "CaseControlledWebSocketServer",
    "Expectation",
    "ResponseStream",
    "StreamConnection",
    "WebSocketConnection",
]
