"""The test certificate authority: real TLS handshakes against real sockets."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import pytest
import trustme

from aiotestkit import (
    CaseControlledTestServer,
    CertificateAuthority,
    default_certificate_authority,
)

pytestmark = pytest.mark.asyncio


async def _handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, name: str
) -> str:
    """Do a TLS handshake over loopback and return the subject the client verified."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname=name
        )
        peer = writer.get_extra_info("peercert")
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    return str(peer["subjectAltName"])


async def test_authority_is_a_trustme_ca_shared_by_the_fixtures(
    tls_certificate_authority: CertificateAuthority,
) -> None:
    assert isinstance(tls_certificate_authority, trustme.CA)
    assert tls_certificate_authority is default_certificate_authority()


async def test_leaf_certificates_are_cached_per_host_names() -> None:
    ca = CertificateAuthority()
    assert ca.leaf_certificate("api.example.com") is ca.leaf_certificate("API.example.com.")
    assert ca.leaf_certificate() is ca.leaf_certificate("localhost", "127.0.0.1", "::1")
    assert ca.leaf_certificate("a.example") is not ca.leaf_certificate("b.example")


async def test_leaf_certificate_rejects_an_empty_name() -> None:
    with pytest.raises(ValueError, match="host names must not be empty"):
        CertificateAuthority().leaf_certificate("")


async def test_tls_certificate_covers_the_loopback_names(
    tls_certificate: trustme.LeafCert, ssl_ctx: ssl.SSLContext, client_ssl_ctx: ssl.SSLContext
) -> None:
    assert "localhost" in await _handshake(ssl_ctx, client_ssl_ctx, "localhost")
    assert "127.0.0.1" in await _handshake(ssl_ctx, client_ssl_ctx, "127.0.0.1")
    assert tls_certificate.cert_chain_pems


async def test_client_context_verifies() -> None:
    context = default_certificate_authority().client_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


async def test_sni_context_serves_a_certificate_for_any_requested_host() -> None:
    ca = default_certificate_authority()
    server_context = ca.sni_server_context()
    for name in ("api.kraken.com", "www.example.org", "xn--bcher-kva.example"):
        assert name in await _handshake(server_context, ca.client_context(), name)


async def test_certificate_of_another_ca_is_rejected() -> None:
    ca = default_certificate_authority()
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        await _handshake(
            ca.untrusted_server_context("a.example"), ca.client_context(), "a.example"
        )


async def test_certificate_for_another_host_is_rejected() -> None:
    ca = default_certificate_authority()
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        await _handshake(ca.server_context("b.example"), ca.client_context(), "a.example")


async def test_expired_certificate_is_rejected() -> None:
    ca = default_certificate_authority()
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        await _handshake(ca.expired_server_context("a.example"), ca.client_context(), "a.example")


async def test_https_server_without_context_serves_the_host_the_client_asks_for(
    client_ssl_ctx: ssl.SSLContext,
) -> None:
    async with CaseControlledTestServer(scheme="https") as server:
        assert server.make_url("/").scheme == "https"
        connector = aiohttp.TCPConnector(ssl=client_ssl_ctx)
        async with aiohttp.ClientSession(connector=connector) as session:
            task = asyncio.create_task(session.get(server.make_url("/hello")))
            request = await server.receive_request()
            assert request.secure
            server.send_response(request, text="over TLS")
            async with await task as response:
                assert await response.text() == "over TLS"


async def test_https_server_with_a_given_context(
    ssl_ctx: ssl.SSLContext, client_ssl_ctx: ssl.SSLContext
) -> None:
    async with (
        CaseControlledTestServer(ssl=ssl_ctx) as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl_ctx)) as session,
    ):
        assert server.scheme == "https"
        task = asyncio.create_task(session.get(server.make_url("/")))
        server.send_response(await server.receive_request())
        (await task).release()


async def test_http_scheme_with_a_context_is_refused(ssl_ctx: ssl.SSLContext) -> None:
    with pytest.raises(ValueError, match="scheme='http' cannot serve with an SSL context"):
        CaseControlledTestServer(scheme="http", ssl=ssl_ctx)


async def test_a_client_with_default_trust_rejects_the_test_ca() -> None:
    """The toolkit never turns verification off: an unconfigured client refuses the server."""
    async with (
        CaseControlledTestServer(scheme="https") as server,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(server.make_url("/"))
        assert server.pending_requests == []
