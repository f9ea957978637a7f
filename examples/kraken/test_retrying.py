"""The back-off schedule of RetryingKraken, proven in virtual time.

Tries at 0, 10, 30 and 70 s (or later, when a try waits for its 30 s timeout): the
case-controlled server records when each request reaches it, on the virtual clock.
Each test covers minutes of client time and runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from quotation import PayloadError, QuotationError
from retrying import RetryingKraken

from aiotestkit import AiohttpRedirector, CaseControlledTestServer, VirtualClock

pytestmark = pytest.mark.asyncio

TICKER = {"error": [], "result": {"XXBTZUSD": {"c": ["3602.20000", "0.01000000"]}}}


@pytest.fixture
def kraken(aiohttp_redirector: AiohttpRedirector) -> RetryingKraken:
    return RetryingKraken(session=aiohttp_redirector.session)


async def test_retries_after_10_20_and_40_seconds_then_gives_up(
    clock: VirtualClock, kraken: RetryingKraken, kraken_server: CaseControlledTestServer
) -> None:
    started = time.perf_counter()
    task = asyncio.create_task(kraken.get_price("btcusd"))
    tried_at = []
    for _ in range(4):
        request = await kraken_server.receive_request(timeout=60)
        tried_at.append(clock.time())
        kraken_server.send_response(request, status=503)
    with pytest.raises(QuotationError, match="Kraken is unavailable: HTTP 503"):
        await task
    assert tried_at == [0, 10, 30, 70]
    assert time.perf_counter() - started < 5  # 70 s of client time


async def test_each_try_times_out_after_30_seconds(
    clock: VirtualClock, kraken: RetryingKraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    tried_at = []
    for _ in range(4):
        request = await kraken_server.receive_request(timeout=120)  # and never answered
        tried_at.append(clock.time())
    with pytest.raises(QuotationError, match="did not answer in time"):
        await task
    assert tried_at == [0, 40, 90, 160]
    assert clock.time() == 190
    await kraken_server.wait_for_disconnect(request)  # each try hung up at its timeout
    assert kraken_server.pending_requests == []


async def test_an_answer_just_before_the_timeout_ends_the_retries(
    clock: VirtualClock, kraken: RetryingKraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    kraken_server.send_response(await kraken_server.receive_request(), status=502)
    request = await kraken_server.receive_request(timeout=60)
    assert clock.time() == 10
    await asyncio.sleep(29.5)  # the client's 30 s timeout has not run out yet
    kraken_server.send_json(request, TICKER)
    assert await task == Decimal("3602.20000")
    assert clock.time() == 39.5
    assert kraken_server.pending_requests == []


async def test_a_malformed_answer_is_not_retried(
    clock: VirtualClock, kraken: RetryingKraken, kraken_server: CaseControlledTestServer
) -> None:
    task = asyncio.create_task(kraken.get_price("btcusd"))
    kraken_server.send_response(
        await kraken_server.receive_request(), text="<html>", content_type="text/html"
    )
    with pytest.raises(PayloadError, match="expected JSON, got text/html"):
        await task
    assert clock.time() == 0
    assert kraken_server.pending_requests == []
