"""The Kraken client with retries: exponential back-off after transient failures.

A transient failure is one a later try may not see: Kraken answered 5xx, the
connection failed, or no answer came within the 30 s timeout. Malformed answers and
API errors are not retried. After the first try, the client retries up to three
times, waiting 10 s, 20 s and 40 s before each retry.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from quotation import Kraken, PayloadError, QuotationError


class RetryingKraken(Kraken):
    """:class:`Kraken` that retries transient failures with exponential back-off."""

    BACKOFF: ClassVar[tuple[float, ...]] = (10.0, 20.0, 40.0)
    """Seconds to wait before each retry; its length is the number of retries."""

    async def _fetch(self, params: dict[str, str]) -> dict[str, Any]:
        for delay in self.BACKOFF:
            try:
                return await super()._fetch(params)
            except PayloadError:
                raise
            except QuotationError:
                await asyncio.sleep(delay)
        return await super()._fetch(params)
