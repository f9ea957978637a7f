"""The public surface: exactly these names, nothing leaks by accident."""

from __future__ import annotations

import aiotestkit


def test_public_names() -> None:
    assert aiotestkit.__all__ == [
        "AiohttpRedirector",
        "AiotestkitError",
        "AiotestkitWarning",
        "BlockedConnection",
        "CaseControlledTestServer",
        "CertificateAuthority",
        "DeadlockError",
        "FakeResolver",
        "NameResolutionDenied",
        "NetworkAccessDenied",
        "NetworkSandbox",
        "NetworkSandboxActive",
        "ReceiveTimeout",
        "RequestNotPending",
        "UnansweredRequestsWarning",
        "UnverifiedTLSConnection",
        "VirtualClock",
        "default_certificate_authority",
    ]


def test_every_public_name_is_documented() -> None:
    for name in aiotestkit.__all__:
        doc = getattr(aiotestkit, name).__doc__
        assert doc, f"{name} has no docstring"
        assert "Example" in doc, f"{name}'s docstring has no example"
