"""The Kraken client tested against a case-controlled server, over real HTTPS.

Each test reads in the order things happen: the client asks, the test receives the
request, checks it and answers; then the test checks what the client made of it.
"""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal

import aiohttp
import pytest
from quotation import Kraken, PayloadError, QuotationError

from aiotestkit import AiohttpRedirector, CaseControlledTestServer, CertificateAuthority

pytestmark = pytest.mark.asyncio

TICKER = {
    "error": [],
    "result": {
        "XXBTZUSD": {
            "a": ["3602.30000", "1", "1.000"],
            "b": ["3602.20000", "2", "2.000"],
            "c": ["3602.20000", "0.01000000"],
        }
    },
}


@pytest.fixture
def kraken(aiohttp_redirector: AiohttpRedirector) -> Kraken:
    return Kraken(session=aiohttp_redirector.session)


async def test_price_is_the_last_trade(
    kraken: Kraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    request = await kraken_server.receive_request()
    assert request.method == "GET"
    assert request.path_qs == "/0/public/Ticker?pair=XXBTZUSD"
    assert request.host == "api.kraken.com"
    assert request.secure

    kraken_server.send_json(request, TICKER)
    assert await task == Decimal("3602.20000")


async def test_invalid_pair_is_refused_without_a_request(
    kraken: Kraken, kraken_server: CaseControlledTestServer
) -> None:
    with pytest.raises(ValueError, match="unknown pair 'btcxyz'"):
        await kraken.get_price("btcxyz")
    assert kraken_server.pending_requests == []


async def test_kraken_error_field_is_a_quotation_error(
    kraken: Kraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    request = await kraken_server.receive_request()
    kraken_server.send_json(request, {"error": ["EQuery:Unknown asset pair"]})
    with pytest.raises(QuotationError, match="EQuery:Unknown asset pair"):
        await task


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_is_a_quotation_error(
    kraken: Kraken, kraken_server: CaseControlledTestServer, status: int
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    kraken_server.send_response(await kraken_server.receive_request(), status=status)
    with pytest.raises(QuotationError, match=f"HTTP {status}") as excinfo:
        await task
    assert not isinstance(excinfo.value, PayloadError)


async def test_malformed_json_is_a_payload_error(
    kraken: Kraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    request = await kraken_server.receive_request()
    kraken_server.send_response(request, text='{"error": [', content_type="application/json")
    with pytest.raises(PayloadError, match="malformed JSON"):
        await task


async def test_missing_price_is_a_payload_error(
    kraken: Kraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    kraken_server.send_json(await kraken_server.receive_request(), {"error": [], "result": {}})
    with pytest.raises(PayloadError, match="no last trade price for XXBTZUSD"):
        await task


async def test_wrong_content_type_is_a_payload_error(
    kraken: Kraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    request = await kraken_server.receive_request()
    kraken_server.send_response(request, text="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(PayloadError, match="expected JSON, got text/html"):
        await task


async def test_connection_refused_is_a_quotation_error(
    kraken: Kraken, aiohttp_redirector: AiohttpRedirector
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    aiohttp_redirector.add_server("api.kraken.com", 443, closed_port)
    with pytest.raises(QuotationError, match="cannot reach Kraken") as excinfo:
        await kraken.get_price("btcusd")
    assert isinstance(excinfo.value.__cause__, aiohttp.ClientConnectorError)


async def test_server_dropping_the_connection_is_a_quotation_error(
    kraken: Kraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    kraken_server.abort(await kraken_server.receive_request())
    # aiohttp retries an idempotent request once on a new connection: drop that too.
    kraken_server.abort(await kraken_server.receive_request())
    with pytest.raises(QuotationError, match="cannot reach Kraken"):
        await task


async def test_client_gives_up_while_the_server_holds_the_request(
    aiohttp_redirector: AiohttpRedirector, kraken_server: CaseControlledTestServer
) -> None:
    kraken = Kraken(session=aiohttp_redirector.session, timeout=0.1)
    task = asyncio.create_task(kraken.get_price("btcusd"))
    request = await kraken_server.receive_request()
    with pytest.raises(QuotationError, match="did not answer in time"):
        await task
    await kraken_server.wait_for_disconnect(request)  # the client released its connection


# Real TLS: a client that accepts a bad certificate would take prices from anyone.
# Each case is one line: the server context that presents the bad certificate.


def _untrusted(ca: CertificateAuthority) -> object:
    return ca.untrusted_server_context("api.kraken.com")


def _wrong_host(ca: CertificateAuthority) -> object:
    return ca.server_context("www.example.org")


def _expired(ca: CertificateAuthority) -> object:
    return ca.expired_server_context("api.kraken.com")


@pytest.mark.parametrize(
    ("bad_context", "reason"),
    [
        (_untrusted, "unable to get local issuer certificate"),
        (_wrong_host, "Hostname mismatch"),
        (_expired, "certificate has expired"),
    ],
    ids=["untrusted-ca", "wrong-hostname", "expired"],
)
async def test_bad_certificate_is_rejected(
    kraken: Kraken,
    aiohttp_redirector: AiohttpRedirector,
    tls_certificate_authority: CertificateAuthority,
    bad_context: object,
    reason: str,
) -> None:
    ssl_context = bad_context(tls_certificate_authority)  # type: ignore[operator]
    async with CaseControlledTestServer(ssl=ssl_context) as server:
        aiohttp_redirector.add_server("api.kraken.com", 443, server)
        with pytest.raises(QuotationError) as excinfo:
            await kraken.get_price("btcusd")
        assert server.pending_requests == []
    cause = excinfo.value.__cause__
    assert isinstance(cause, aiohttp.ClientConnectorCertificateError)
    assert reason in str(cause)
