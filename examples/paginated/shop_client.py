"""A small shop API client: an OAuth token, a paginated listing, and one write.

The kind of client whose tests need many requests that are not the point (the token,
every page) around the one that is (the write).
"""

from __future__ import annotations

from typing import Any

import aiohttp


class ShopError(Exception):
    """The shop API answered with an error status."""


class ShopClient:
    """A client of ``https://api.shop.example``.

    Args:
        session: the aiohttp session to send requests with.
        client_id: the OAuth client ID.
        client_secret: the OAuth client secret.
    """

    BASE = "https://api.shop.example"

    def __init__(self, session: aiohttp.ClientSession, client_id: str, client_secret: str):
        self._session = session
        self._credentials = {"client_id": client_id, "client_secret": client_secret}
        self._token: str | None = None

    async def _authorization(self) -> dict[str, str]:
        if self._token is None:
            async with self._session.post(
                f"{self.BASE}/oauth/token",
                json={"grant_type": "client_credentials", **self._credentials},
            ) as response:
                if response.status != 200:
                    raise ShopError(f"token: HTTP {response.status}")
                self._token = (await response.json())["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    async def list_products(self) -> list[dict[str, Any]]:
        """Every product, following the listing's pages until the last one."""
        products: list[dict[str, Any]] = []
        page: int | None = 1
        while page is not None:
            async with self._session.get(
                f"{self.BASE}/products", params={"page": page}, headers=await self._authorization()
            ) as response:
                if response.status != 200:
                    raise ShopError(f"products page {page}: HTTP {response.status}")
                body = await response.json()
            products.extend(body["items"])
            page = body["next_page"]
        return products

    async def discontinue(self, product_id: int) -> None:
        """Mark one product as discontinued."""
        async with self._session.patch(
            f"{self.BASE}/products/{product_id}",
            json={"status": "discontinued"},
            headers=await self._authorization(),
        ) as response:
            if response.status != 200:
                raise ShopError(f"discontinue {product_id}: HTTP {response.status}")

    async def discontinue_out_of_stock(self) -> list[int]:
        """Discontinue every product with no stock left; return their IDs."""
        gone = [p["id"] for p in await self.list_products() if p["stock"] == 0]
        for product_id in gone:
            await self.discontinue(product_id)
        return gone
