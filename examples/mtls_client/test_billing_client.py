"""The mutual-TLS client against a server that requires and inspects its certificate.

The server's context comes from the test certificate authority and requires a client
certificate from it (``sni_server_context(require_client_certificate=True)``); the
client's certificate is issued in one line (``client_certificate(name)``) and written
to files, as a deployment would mount it. The sandbox routes the real host name and
replaces only the client's trust store: the client's own certificate chain and its
verification settings stay as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from billing_client import BillingClient

from aiotestkit import (
    CaseControlledTestServer,
    CertificateAuthority,
    NetworkSandbox,
    ReceiveTimeout,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def billing_server(
    network_sandbox: NetworkSandbox, tls_certificate_authority: CertificateAuthority
) -> AsyncIterator[CaseControlledTestServer]:
    context = tls_certificate_authority.sni_server_context(require_client_certificate=True)
    async with CaseControlledTestServer(ssl=context) as server:
        await network_sandbox.route("billing.example.com", 443, server)
        yield server


def write_certificate(
    authority: CertificateAuthority, name: str, directory: Path
) -> BillingClient:
    leaf = authority.client_certificate(name)
    certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
    certificate.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return BillingClient(certificate, key)


async def test_the_server_sees_who_the_client_is(
    billing_server: CaseControlledTestServer,
    tls_certificate_authority: CertificateAuthority,
    tmp_path: Path,
) -> None:
    client = write_certificate(tls_certificate_authority, "shop-frontend", tmp_path)
    task = asyncio.create_task(client.invoice("2026-0042"))
    request = await billing_server.receive_request()
    assert request.transport is not None
    peer = request.transport.get_extra_info("peercert")
    assert (("commonName", "shop-frontend"),) in peer["subject"]
    assert request.path == "/v1/invoices/2026-0042"
    billing_server.send_json(request, {"number": "2026-0042", "total": "19.90"})
    assert await task == {"number": "2026-0042", "total": "19.90"}


async def test_a_client_without_a_certificate_is_turned_away_in_the_handshake(
    billing_server: CaseControlledTestServer,
) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get("https://billing.example.com/v1/invoices/1")
    with pytest.raises(ReceiveTimeout):  # nothing reached the server
        billing_server.receive_request_nowait()
