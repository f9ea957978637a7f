"""Drop-in replacements for the mocking tools users migrate from, served over real sockets.

- :mod:`aiotestkit.compat.aioresponses`: the ``aioresponses`` API for aiohttp clients.
- :mod:`aiotestkit.compat.httpx_mock`: a pytest-httpx compatible fixture for httpx,
  ``aiotestkit_httpx_mock``.

Each mock is an expectation on a :class:`aiotestkit.CaseControlledTestServer` routed
through the test's :class:`aiotestkit.NetworkSandbox`: the client under test makes real
connections and parses a real HTTP response, so the mocks cannot break when the client
library changes its internals. Neither module imports the tool it replaces. What the
peers do that cannot be done over a socket is listed in ``docs/migration.md``.
"""
