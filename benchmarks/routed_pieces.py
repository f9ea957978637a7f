"""What each piece of a routed HTTP test costs, in CPU instructions counted by callgrind.

``benchmarks/instructions.py`` counts whole pytest runs; this script takes the routed test
apart, outside pytest, so that each piece's cost is known without the noise of a shared
machine. Each *flow* below is run ``--small`` and ``--large`` times in one process under
valgrind's callgrind, each iteration on a new event loop (as pytest-asyncio gives each test);
the per-iteration slope, in millions of instructions, is the flow's cost, and the differences
between flows are the pieces':

- ``loop``: a new event loop that runs ``asyncio.sleep(0)``, closed after it;
- ``plain``: aiohttp's ``RawTestServer(handler)`` and a ``ClientSession`` GET of one JSON
  document, as ``aiohttp_raw_server`` does in pytest-aiohttp's test;
- ``server``: a ``CaseControlledTestServer`` started and closed, nothing else;
- ``case-controlled``: the same server and the same client GET to its URL; the test receives
  the request and answers it with ``send_json``;
- ``sandbox-open``: ``server``, with a ``NetworkSandbox`` opened and closed on the loop;
- ``sandbox-route``: that, with the host routed to the server (no request);
- ``sandbox``: the whole routed test: the client GETs ``http://api.example.com/...``, an
  unmodified ``ClientSession`` that resolves and connects through the sandbox;
- any flow with ``+instrumented`` appended: the same inside ``async with
  LoopInstrumentation()`` (every hygiene check on, as the pytest plugin's default).

Usage::

    python benchmarks/routed_pieces.py                      # every flow
    python benchmarks/routed_pieces.py plain sandbox sandbox+instrumented
    python benchmarks/routed_pieces.py --check              # each flow once, no valgrind

Needs ``valgrind`` on the ``PATH``; all flows take about two minutes. Nothing leaves
loopback: the sandbox routes the one host name to the local server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instructions import callgrind_count

HOST = "api.example.com"
PAYLOAD = {"result": {"price": "3602.2", "volume": 17}, "error": []}
FLOWS = (
    "loop",
    "plain",
    "server",
    "case-controlled",
    "sandbox-open",
    "sandbox-route",
    "sandbox",
)


async def _fetch(url: str) -> object:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json()


async def _plain() -> None:
    from aiohttp import web
    from aiohttp.test_utils import RawTestServer

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.json_response(PAYLOAD)

    server = RawTestServer(handler)
    await server.start_server()
    assert await _fetch(str(server.make_url("/item/1"))) == PAYLOAD
    await server.close()


async def _answer(server: object, url: str) -> None:
    from aiotestkit import CaseControlledTestServer

    assert isinstance(server, CaseControlledTestServer)
    task = asyncio.create_task(_fetch(url))
    request = await server.receive_request()
    server.send_json(request, PAYLOAD)
    assert await task == PAYLOAD


async def _routed(*, route: bool = True, fetch: bool = True, sandbox: bool = True) -> None:
    from aiotestkit import CaseControlledTestServer, NetworkSandbox

    server = CaseControlledTestServer()
    await server.start_server()
    if not sandbox:
        if fetch:
            await _answer(server, str(server.make_url("/item/1")))
        await server.close()
        return
    network = NetworkSandbox()
    network.open_nowait(asyncio.get_running_loop())
    if route:
        await network.route(HOST, 80, server)
    if fetch:
        await _answer(server, f"http://{HOST}/item/1")
    await network.close()
    await server.close()


def _flow(name: str) -> Callable[[], Awaitable[None]]:
    base, _, extra = name.partition("+")
    flows: dict[str, Callable[[], Awaitable[None]]] = {
        "loop": lambda: asyncio.sleep(0),
        "plain": _plain,
        "server": lambda: _routed(fetch=False, sandbox=False),
        "case-controlled": lambda: _routed(sandbox=False),
        "sandbox-open": lambda: _routed(route=False, fetch=False),
        "sandbox-route": lambda: _routed(fetch=False),
        "sandbox": _routed,
    }
    if base not in flows or extra not in ("", "instrumented"):
        raise SystemExit(f"unknown flow {name!r}: expected one of {FLOWS}, or one +instrumented")
    flow = flows[base]
    if not extra:
        return flow

    async def instrumented() -> None:
        from aiotestkit import LoopInstrumentation

        async with LoopInstrumentation(name="routed_pieces"):
            await flow()

    return instrumented


def _run(name: str, iterations: int) -> None:
    """The child's work: ``iterations`` of the flow, each on a new loop."""
    flow = _flow(name)
    for _ in range(iterations):
        asyncio.run(flow())


def _count(name: str, iterations: int, directory: Path) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, __file__, "--child", name, str(iterations)]
    return callgrind_count(command, directory / f"callgrind-{iterations}.out", env=env)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _run(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("flows", nargs="*", default=list(FLOWS))
    parser.add_argument("--small", type=int, default=30, help="iterations of the small run")
    parser.add_argument("--large", type=int, default=120, help="iterations of the large run")
    parser.add_argument(
        "--check",
        action="store_true",
        help="run each flow and its +instrumented form once, without valgrind, and stop",
    )
    args = parser.parse_args()
    for name in args.flows:
        _flow(name)  # an unknown name fails before anything runs
    if args.check:
        for name in args.flows:
            for form in (name, f"{name}+instrumented") if "+" not in name else (name,):
                _run(form, 1)
                print(f"{form}: ran")
        return
    print("| flow | M instructions/iteration | above `loop` |")
    print("|---|---:|---:|")
    slopes: dict[str, float] = {}
    for name in args.flows:
        with tempfile.TemporaryDirectory(prefix="aiotestkit-pieces-") as tmp:
            small, large = (_count(name, n, Path(tmp)) for n in (args.small, args.large))
        slopes[name] = (large - small) / (args.large - args.small) / 1e6
        above = f"{slopes[name] - slopes['loop']:+.3f}" if "loop" in slopes else "n/a"
        print(f"| {name} | {slopes[name]:.3f} | {above} |", flush=True)


if __name__ == "__main__":
    main()
