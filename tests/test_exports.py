"""The public surface: exactly these names, nothing leaks by accident."""

from __future__ import annotations

import inspect

import aiotestkit


def test_public_names() -> None:
    assert aiotestkit.__all__ == [
        "AiohttpRedirector",
        "AiotestkitError",
        "AiotestkitWarning",
        "BlockedConnection",
        "BlockedWhileWaiting",
        "CaseControlledServerFactory",
        "CaseControlledStreamServer",
        "CaseControlledTestServer",
        "CaseControlledWebSocketServer",
        "CertificateAuthority",
        "ClientClosedConnection",
        "DeadlockError",
        "Expectation",
        "FakeResolver",
        "HTTPProxy",
        "HandlerError",
        "HangTimeout",
        "HygieneError",
        "HygieneIssue",
        "HygieneReport",
        "HygieneWarning",
        "LoopExtension",
        "LoopInstrumentation",
        "MockNotAwaited",
        "NameResolutionDenied",
        "NetworkAccessDenied",
        "NetworkAioHTTPTestCase",
        "NetworkSandbox",
        "NetworkSandboxActive",
        "NetworkTestCase",
        "ReceiveTimeout",
        "RequestNotPending",
        "ResponseStream",
        "SendTimeout",
        "StreamConnection",
        "TransportContext",
        "UnansweredRequestsWarning",
        "UnexpectedMessage",
        "UnexpectedRequestsWarning",
        "UnfinishedConnectionsWarning",
        "UnusedExpectationsWarning",
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


def test_mock_module_public_names() -> None:
    import aiotestkit.mock

    assert aiotestkit.mock.__all__ == [
        "AsyncPatch",
        "AwaitableContextMock",
        "assert_all_awaited",
        "async_context_mock",
        "async_iterator_mock",
        "async_patch",
        "async_patch_object",
        "awaitable_context_mock",
    ]
    for name in aiotestkit.mock.__all__:
        doc = getattr(aiotestkit.mock, name).__doc__
        assert doc, f"aiotestkit.mock.{name} has no docstring"
        assert "Example" in doc, f"aiotestkit.mock.{name}'s docstring has no example"


def test_every_public_method_is_documented_with_an_example() -> None:
    """Properties are nouns and may go without an example; methods may not."""
    missing = []
    for name in aiotestkit.__all__:
        cls = getattr(aiotestkit, name)
        if not inspect.isclass(cls) or issubclass(cls, BaseException):
            continue
        for attribute, value in vars(cls).items():
            if attribute.startswith("_") or not inspect.isfunction(value):
                continue
            if "Example" not in (inspect.getdoc(value) or ""):
                missing.append(f"{name}.{attribute}")
    assert missing == []


def test_public_classes_report_the_public_module() -> None:
    for name in aiotestkit.__all__:
        obj = getattr(aiotestkit, name)
        module = getattr(obj, "__module__", None)
        assert module in ("aiotestkit", "aiotestkit.errors", "aiotestkit.testcase"), (name, module)
