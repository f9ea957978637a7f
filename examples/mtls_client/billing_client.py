"""An aiohttp client that authenticates to its service with a client certificate.

``BillingClient`` loads its certificate and key from files, as deployed services
do (mounted secrets), and verifies the server against the system's trust store.
Nothing in it knows about tests.
"""

from __future__ import annotations

import ssl
from os import PathLike
from typing import Any

import aiohttp


class BillingClient:
    """Client of ``https://billing.example.com`` over mutual TLS."""

    def __init__(self, certificate: str | PathLike[str], key: str | PathLike[str]) -> None:
        self._context = ssl.create_default_context()
        self._context.load_cert_chain(certificate, key)

    async def invoice(self, number: str) -> dict[str, Any]:
        """Return invoice ``number``."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"https://billing.example.com/v1/invoices/{number}", ssl=self._context
            ) as response,
        ):
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data
