"""The packet receiver of seed 003, asynchronous version.

``receive()`` answers a PING with a PONG, forwards a MESSAGE to the event system and
sends its response back to the client, and refuses any other packet type. Both
``send_to_client`` and ``trigger_event`` reach outside the process, so the tests
replace them with async mocks.

The seed's listing lost the ``else:`` before ``raise ValueError``, which would make
every MESSAGE fail; this is the intended version.
"""

from __future__ import annotations


async def receive(packet_type: str, packet_data: str) -> None:
    """Receive a packet from the client."""
    if packet_type == "PING":
        await send_to_client("PONG", packet_data)
    elif packet_type == "MESSAGE":
        response = await trigger_event("message", packet_data)
        await send_to_client("MESSAGE", response)
    else:
        raise ValueError(f"Invalid packet type {packet_type!r}")


async def send_to_client(packet_type: str, packet_data: str) -> None:
    """Send a packet to the connected client (writes to the network)."""
    raise ConnectionError("send_to_client() needs a connected client")


async def trigger_event(event_name: str, event_data: str) -> str:
    """Notify the other subsystems and return the response of the handler."""
    raise ConnectionError("trigger_event() needs the event system")
