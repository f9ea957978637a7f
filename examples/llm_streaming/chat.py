"""A small chat front end on the OpenAI SDK: it streams a reply piece by piece.

This is the "real client code" of the example: it knows ``https://api.openai.com``
only through the SDK, and the tests run it unmodified.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from openai import AsyncOpenAI


async def stream_reply(
    client: AsyncOpenAI, question: str, *, model: str = "gpt-4o-mini"
) -> AsyncIterator[str]:
    """Yield the pieces of the model's answer to ``question`` as they arrive."""
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        stream=True,
    )
    async with stream:
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    yield choice.delta.content
