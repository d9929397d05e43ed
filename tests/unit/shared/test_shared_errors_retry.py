"""Error translation from botocore, and the retry policy (no network)."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from sluice_shared import retry
from sluice_shared.aws.errors import (
    AwsConfigurationError,
    AwsServiceError,
    ConditionalCheckFailed,
    RequestRejected,
    translate,
    translating,
)
from sluice_shared.errors import (
    PoisonInputError,
    SluiceError,
    ThrottledError,
    TransientError,
)
from sluice_shared.ports import ObjectNotFoundError
from sluice_shared.retry import aws_retry, with_retry


def client_error(code: str, status: int, **extra: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "SomeOperation")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, ThrottledError),
        ("ProvisionedThroughputExceededException", 400, ThrottledError),
        ("SlowDown", 503, ThrottledError),
        ("Whatever", 429, ThrottledError),
        ("InternalError", 500, TransientError),
        ("ServiceUnavailable", 503, TransientError),
        ("SomethingNew", 502, TransientError),
        ("RequestTimeout", 400, TransientError),
        ("ConditionalCheckFailedException", 400, ConditionalCheckFailed),
        ("NoSuchKey", 404, ObjectNotFoundError),
        ("404", 404, ObjectNotFoundError),
        ("NoSuchBucket", 404, AwsConfigurationError),
        ("ResourceNotFoundException", 400, AwsConfigurationError),
        ("AccessDenied", 403, AwsConfigurationError),
        ("ValidationException", 400, RequestRejected),
        ("InvalidRange", 416, RequestRejected),
        ("SomethingNew", 400, AwsServiceError),
    ],
)
def test_translate_client_error_maps_code_and_status(
    code: str, status: int, expected: type[SluiceError]
) -> None:
    translated = translate(client_error(code, status))

    assert type(translated) is expected
    assert code in translated.message


def test_translate_throttling_is_transient_and_poison_is_not() -> None:
    assert isinstance(translate(client_error("ThrottlingException", 400)), TransientError)
    assert isinstance(translate(client_error("NoSuchKey", 404)), PoisonInputError)
    assert not isinstance(translate(client_error("AccessDenied", 403)), TransientError)


def test_translate_cancelled_transaction_by_condition_is_conditional_check_failed() -> None:
    cancelled = client_error(
        "TransactionCanceledException",
        400,
        CancellationReasons=[{"Code": "ConditionalCheckFailed"}, {"Code": "None"}],
    )
    conflict = client_error(
        "TransactionCanceledException",
        400,
        CancellationReasons=[{"Code": "TransactionConflict"}, {"Code": "None"}],
    )

    assert type(translate(cancelled)) is ConditionalCheckFailed
    assert type(translate(conflict)) is TransientError


def test_translate_cancelled_transaction_says_which_items_failed_their_condition() -> None:
    # GIVEN the reasons as a list, or (some endpoints) only in the message
    listed = client_error(
        "TransactionCanceledException",
        400,
        CancellationReasons=[{"Code": c} for c in ("None", "None", "ConditionalCheckFailed")],
    )
    message: dict[str, Any] = {
        "Error": {
            "Code": "TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific "
            "reasons [ConditionalCheckFailed, None, ConditionalCheckFailed]",
        },
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    in_message = ClientError(message, "TransactWriteItems")  # type: ignore[arg-type]
    # WHEN translated THEN the positions of the failed conditions are kept
    first, second = translate(listed), translate(in_message)
    assert isinstance(first, ConditionalCheckFailed)
    assert isinstance(second, ConditionalCheckFailed)
    assert (first.failed_items, second.failed_items) == (frozenset({2}), frozenset({0, 2}))


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        TimeoutError(),
        ConnectionResetError("peer reset"),
    ],
    ids=["endpoint", "read-timeout", "asyncio-timeout", "socket-reset"],
)
def test_translate_network_errors_are_transient(exc: BaseException) -> None:
    assert type(translate(exc)) is TransientError


def test_translate_missing_credentials_is_configuration() -> None:
    assert type(translate(NoCredentialsError())) is AwsConfigurationError


def test_translate_sluice_error_passes_through_and_unknown_is_unexpected() -> None:
    original = ThrottledError("already ours")

    assert translate(original) is original
    assert translate(RuntimeError("boom")).code == "unexpected"


def test_translating_reraises_from_original_and_leaves_bugs_alone() -> None:
    original = client_error("SlowDown", 503)
    with pytest.raises(ThrottledError) as caught, translating():
        raise original
    assert caught.value.__cause__ is original

    with pytest.raises(KeyError), translating():
        raise KeyError("a bug stays a bug")


def test_translating_leaves_local_disk_errors_untranslated() -> None:
    disk_full = OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space") as caught, translating():
        raise disk_full
    assert caught.value is disk_full


class Flaky:
    """Fails with the queued errors, then returns `value`."""

    def __init__(self, *errors: BaseException, value: str = "ok") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.value = value

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(retry, "SLEEP", fake_sleep)
    return waited


async def test_aws_retry_transient_then_success_returns_value(sleeps: list[float]) -> None:
    call = Flaky(TransientError("a"), ThrottledError("b"))

    assert await with_retry(call) == "ok"
    assert call.calls == 3
    assert len(sleeps) == 2


async def test_aws_retry_poison_is_never_retried(sleeps: list[float]) -> None:
    call = Flaky(PoisonInputError("bad"))

    with pytest.raises(PoisonInputError):
        await with_retry(call)
    assert call.calls == 1
    assert sleeps == []


async def test_aws_retry_stops_after_attempts_with_the_last_error(sleeps: list[float]) -> None:
    call = Flaky(*(TransientError(f"fail {n}") for n in range(10)))

    with pytest.raises(TransientError, match="fail 3"):
        await with_retry(call, lambda: aws_retry(attempts=4))
    assert call.calls == 4


async def test_aws_retry_waits_are_full_jitter_within_the_cap(sleeps: list[float]) -> None:
    call = Flaky(*(TransientError("x") for _ in range(30)))

    with pytest.raises(TransientError):
        await with_retry(call, lambda: aws_retry(attempts=30, initial_delay=0.1, max_delay=0.8))

    assert len(sleeps) == 29
    assert all(0 <= wait <= 0.8 for wait in sleeps)
    # Full jitter: waits are spread from 0 to the cap, not pinned to it.
    assert min(sleeps) < 0.4 < max(sleeps)


async def test_aws_retry_stops_on_elapsed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 0.0}

    async def slow_sleep(seconds: float) -> None:
        clock["now"] += 10.0

    monkeypatch.setattr(retry, "SLEEP", slow_sleep)
    monkeypatch.setattr("time.monotonic", lambda: clock["now"])
    call = Flaky(*(TransientError("x") for _ in range(50)))

    with pytest.raises(TransientError):
        await with_retry(call, lambda: aws_retry(attempts=50, max_elapsed=25.0))
    assert call.calls == 4  # tries at t=0, 10, 20, 30 -> budget of 25 s exceeded


def test_aws_retry_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="attempts"):
        aws_retry(attempts=0)
