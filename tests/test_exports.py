"""The public surface: exactly these names, nothing leaks by accident."""

from __future__ import annotations

import aiotestkit


def test_public_names() -> None:
    assert aiotestkit.__all__ == [
        "AiohttpRedirector",
        "AiotestkitError",
        "AiotestkitWarning",
        "BlockedConnection",
        "CaseControlledStreamServer",
        "CaseControlledTestServer",
        "CaseControlledWebSocketServer",
        "CertificateAuthority",
        "ClientClosedConnection",
        "DeadlockError",
        "FakeResolver",
        "HandlerError",
        "HangTimeout",
        "HygieneError",
        "HygieneIssue",
        "HygieneReport",
        "HygieneWarning",
        "LoopExtension",
        "LoopInstrumentation",
        "NameResolutionDenied",
        "NetworkAccessDenied",
        "NetworkSandbox",
        "NetworkSandboxActive",
        "ReceiveTimeout",
        "RequestNotPending",
        "SendTimeout",
        "StreamConnection",
        "TransportContext",
        "UnansweredRequestsWarning",
        "UnexpectedMessage",
        "UnfinishedConnectionsWarning",
        "UnverifiedTLSConnection",
        "VirtualClock",
        "WebSocketConnection",
        "default_certificate_authority",
    ]


def test_every_public_name_is_documented() -> None:
    for name in aiotestkit.__all__:
        doc = getattr(aiotestkit, name).__doc__
        assert doc, f"{name} has no docstring"
        assert "Example" in doc, f"{name}'s docstring has no example"
