"""A service SDK that retries requests whose connection dropped, as many SDKs do.

``WeatherClient`` builds its own aiohttp session (no way to inject one) and, like the
SDKs of several popular web services, retries a request up to three times when the
connection fails or drops before the answer, waiting 1 s, 2 s and 4 s first. A
server that answers never sees a retry; a server that is gone makes every try fail.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, ClassVar

import aiohttp


class WeatherUnavailable(Exception):
    """Every try failed; the last failure is the cause."""


class WeatherClient:
    """Client of ``https://api.weather.example``."""

    BASE_URL = "https://api.weather.example"
    BACKOFF: ClassVar[tuple[float, ...]] = (1.0, 2.0, 4.0)
    """Seconds to wait before each retry; its length is the number of retries."""

    def __init__(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def __aenter__(self) -> WeatherClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._session.close()

    async def current(self, city: str) -> dict[str, Any]:
        """Return the current weather of ``city``.

        Raises:
            WeatherUnavailable: if the connection failed or dropped on every try.
        """
        last: aiohttp.ClientConnectionError | None = None
        for delay in (*self.BACKOFF, None):
            try:
                async with self._session.get(
                    f"{self.BASE_URL}/v1/current", params={"city": city}
                ) as response:
                    response.raise_for_status()
                    data: dict[str, Any] = await response.json()
                    return data
            except aiohttp.ClientConnectionError as error:
                last = error
                if delay is not None:
                    await asyncio.sleep(delay)
        raise WeatherUnavailable(
            f"api.weather.example failed {len(self.BACKOFF) + 1} times"
        ) from last
