"""The OpenAI SDK, unmodified, streaming from the test's own api.openai.com.

The network sandbox routes ``api.openai.com:443`` to a case-controlled server over
verified TLS. The test plays the API: it answers the completion request with a
server-sent event stream and writes it chunk by chunk, checking what the client made
of each chunk before it sends the next.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import openai
import pytest
import pytest_asyncio
from chat import stream_reply

from aiotestkit import CaseControlledTestServer, NetworkSandbox, ResponseStream, VirtualClock

pytestmark = pytest.mark.asyncio


def completion_chunk(content: str | None, *, finish_reason: str | None = None) -> str:
    """One ``chat.completion.chunk`` as the API streams it, JSON-encoded."""
    delta = {} if content is None else {"content": content}
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
    )


@pytest_asyncio.fixture
async def api(
    network_sandbox: NetworkSandbox, case_controlled_server: CaseControlledTestServer
) -> AsyncIterator[CaseControlledTestServer]:
    await network_sandbox.route("api.openai.com", 443, case_controlled_server)
    yield case_controlled_server
    network_sandbox.assert_tls_verified()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key="sk-test", max_retries=0) as client:
        yield client


async def start_completion_stream(api: CaseControlledTestServer) -> ResponseStream:
    request = await api.receive_request()
    assert (request.method, request.host, request.path) == (
        "POST",
        "api.openai.com",
        "/v1/chat/completions",
    )
    assert request.headers["Authorization"] == "Bearer sk-test"
    body = await request.json()
    assert body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    return await api.start_stream(request)


async def test_the_reply_arrives_chunk_by_chunk(
    api: CaseControlledTestServer, client: openai.AsyncOpenAI
) -> None:
    pieces: asyncio.Queue[str] = asyncio.Queue()

    async def read_reply() -> None:
        async for piece in stream_reply(client, "Say hello"):
            pieces.put_nowait(piece)

    reader = asyncio.create_task(read_reply())
    stream = await start_completion_stream(api)
    for piece in ["Hel", "lo", ", world"]:
        await stream.send_event(completion_chunk(piece))
        assert await pieces.get() == piece  # the client has it before the next is sent
    await stream.send_event(completion_chunk(None, finish_reason="stop"))
    await stream.send_event("[DONE]")
    await stream.finish()
    await reader
    assert pieces.empty()


async def test_an_error_event_mid_stream_reaches_the_caller(
    api: CaseControlledTestServer, client: openai.AsyncOpenAI
) -> None:
    reply = stream_reply(client, "Say hello")
    first = asyncio.create_task(anext(reply))
    stream = await start_completion_stream(api)
    await stream.send_event(completion_chunk("Hel"))
    assert await first == "Hel"
    await stream.send_event(
        json.dumps({"error": {"message": "overloaded", "type": "server_error"}})
    )
    with pytest.raises(openai.APIError, match="overloaded"):
        await anext(reply)
    await stream.finish()
    await reply.aclose()


async def test_a_stream_cut_off_mid_reply_fails_loudly(
    api: CaseControlledTestServer, client: openai.AsyncOpenAI
) -> None:
    reply = stream_reply(client, "Say hello")
    first = asyncio.create_task(anext(reply))
    stream = await start_completion_stream(api)
    await stream.send_event(completion_chunk("Hel"))
    assert await first == "Hel"
    stream.abort()  # the connection resets before [DONE]
    with pytest.raises(openai.APIConnectionError) as cut_off:
        await anext(reply)
    assert not isinstance(cut_off.value, openai.APITimeoutError)
    await reply.aclose()


async def test_a_stalled_stream_runs_into_the_read_timeout_in_virtual_time(
    api: CaseControlledTestServer, clock: VirtualClock
) -> None:
    async with openai.AsyncOpenAI(
        api_key="sk-test", max_retries=0, timeout=openai.Timeout(600.0, read=30.0)
    ) as client:
        reply = stream_reply(client, "Say hello")
        first = asyncio.create_task(anext(reply))
        stream = await start_completion_stream(api)
        await stream.send_event(completion_chunk("Hel"))
        assert await first == "Hel"
        started = clock.time()
        # The server sends nothing more: 30 virtual seconds later the client gives up.
        with pytest.raises(openai.APITimeoutError):
            await anext(reply)
        assert clock.time() - started == pytest.approx(30.0, abs=0.5)
        await reply.aclose()
        await stream.finish()
