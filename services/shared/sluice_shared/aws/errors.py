"""The one place where botocore, aiohttp and socket errors become Sluice errors.

```
botocore / aiohttp / socket (ConnectionError, TimeoutError)
   │ translate()
   ├── ThrottledError          throttling codes, HTTP 429
   ├── TransientError          5xx, RequestTimeout, connection and read errors, timeouts
   ├── ConditionalCheckFailed  DynamoDB condition (also inside a cancelled transaction)
   ├── ObjectNotFoundError     NoSuchKey / 404 on an object           (PoisonInputError)
   ├── RequestRejected         a 4xx the input caused: validation, range, size (PoisonInputError)
   ├── AwsConfigurationError   missing bucket/table/queue, access denied, bad credentials
   └── AwsServiceError         any other 4xx
```

`AwsConfigurationError` and `AwsServiceError` are neither transient nor poison on purpose: an SQS
consumer reports them as failures, so the message is redelivered and reaches the DLQ after
`maxReceiveCount`, where it can be redriven once the deployment is fixed. Retrying them in-process
would not help, and parking them as poison would blame the input for an operator's problem.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from sluice_shared.errors import PoisonInputError, SluiceError, ThrottledError, TransientError
from sluice_shared.ports import ObjectNotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterator


class ConditionalCheckFailed(SluiceError):
    """A DynamoDB conditional write found the item in another state (an expected race).

    `failed_items`: for a cancelled transaction, the positions of the items whose condition
    failed (empty when the endpoint did not say which)."""

    code = "conditional_check_failed"

    def __init__(
        self, message: str, *, code: str | None = None, failed_items: frozenset[int] = frozenset()
    ) -> None:
        super().__init__(message, code=code)
        self.failed_items = failed_items


class RequestRejected(PoisonInputError):
    """AWS rejected the request because of what it carried (validation, range, size)."""

    code = "request_rejected"


class AwsConfigurationError(SluiceError):
    """A missing resource or a permission/credential problem: fix the deployment, then redrive."""

    code = "aws_configuration"


class AwsServiceError(SluiceError):
    """A client error with no more specific meaning; not retried in-process."""

    code = "aws_error"


# botocore's standard retry mode treats these as throttling (botocore/retries/standard.py).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionConflict",
        "TransactionConflictException",
    }
)
NOT_FOUND_OBJECT_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
CONFIGURATION_CODES = frozenset(
    {
        "NoSuchBucket",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "KMS.DisabledException",
        "KMSAccessDeniedException",
    }
)
REJECTED_CODES = frozenset(
    {
        "ValidationException",
        "ValidationError",
        "InvalidRange",
        "InvalidArgument",
        "InvalidParameterValue",
        "InvalidParameterException",
        "InvalidRequest",
        "EntityTooLarge",
        "EntityTooSmall",
        "InvalidPart",
        "MalformedDetail",
        "MessageTooLong",
        "InvalidMessageContents",
        "ItemCollectionSizeLimitExceededException",
    }
)
_CONDITIONAL = "ConditionalCheckFailed"


def error_code(exc: ClientError) -> str:
    """Return the AWS error code of a `ClientError` ("" when the response carries none)."""
    error = cast("dict[str, Any]", exc.response.get("Error", {}) or {})
    return str(error.get("Code", "") or "")


def _status(exc: ClientError) -> int:
    meta = cast("dict[str, Any]", exc.response.get("ResponseMetadata", {}) or {})
    try:
        return int(meta.get("HTTPStatusCode", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _failed_conditions(exc: ClientError) -> frozenset[int] | None:
    """The positions of a cancelled transaction's items whose condition failed (None: none did,
    empty: one did, but the answer does not say which)."""
    reasons = cast("list[dict[str, Any]]", exc.response.get("CancellationReasons", []) or [])
    codes = [str(reason.get("Code", "")) for reason in reasons]
    if not codes:
        # Some endpoints carry the reasons only in the message: "[ConditionalCheckFailed, None]".
        listed = re.search(r"\[([A-Za-z]+(?:, [A-Za-z]+)*)\]", str(exc))
        if listed is None:
            return frozenset() if _CONDITIONAL in str(exc) else None
        codes = listed.group(1).split(", ")
    failed = frozenset(i for i, code in enumerate(codes) if code == _CONDITIONAL)
    return failed or None


def _translate_client_error(exc: ClientError) -> SluiceError:
    code = error_code(exc)
    status = _status(exc)
    message = f"{exc.operation_name} failed: {code or status}: {exc}"
    if code in THROTTLING_CODES or status == 429:
        return ThrottledError(message)
    if code == "ConditionalCheckFailedException":
        return ConditionalCheckFailed(message)
    if code == "TransactionCanceledException":
        failed = _failed_conditions(exc)
        if failed is not None:
            return ConditionalCheckFailed(message, failed_items=failed)
        # Cancelled by a conflicting transaction or capacity: worth another try.
        return TransientError(message)
    if code in TRANSIENT_CODES or status >= 500:
        return TransientError(message)
    if code in NOT_FOUND_OBJECT_CODES:
        return ObjectNotFoundError(message)
    if code in CONFIGURATION_CODES or status in (401, 403):
        return AwsConfigurationError(message)
    if code in REJECTED_CODES or status in (413, 416):
        return RequestRejected(message)
    return AwsServiceError(message, code=f"aws_{code or status}".lower())


def translate(exc: BaseException) -> SluiceError:
    """Map a foreign exception onto the Sluice error tree.

    Args:
        exc: an exception raised by botocore/aiobotocore, aiohttp, the socket layer, or already a
            `SluiceError` (returned unchanged).

    Returns:
        The Sluice error to raise (`raise translate(exc) from exc`). Unknown exception types become
        a plain `SluiceError` with code `unexpected`, which no retry policy matches.
    """
    if isinstance(exc, SluiceError):
        return exc
    if isinstance(exc, ClientError):
        return _translate_client_error(exc)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError):
        return AwsConfigurationError(f"{type(exc).__name__}: {exc}")
    transient_types = (
        BotoConnectionError,
        HTTPClientError,
        ReadTimeoutError,
        IncompleteReadError,
        aiohttp.ClientError,
        asyncio.TimeoutError,
        TimeoutError,
        ConnectionError,  # the builtin: resets, refusals, broken pipes
    )
    if isinstance(exc, transient_types):
        return TransientError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, BotoCoreError):
        return AwsServiceError(f"{type(exc).__name__}: {exc}", code="aws_client")
    return SluiceError(f"{type(exc).__name__}: {exc}", code="unexpected")


TRANSLATED = (
    ClientError,
    BotoCoreError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    TimeoutError,
    ConnectionError,
)
# Other OSErrors (disk full, permissions on /tmp) are deliberately not translated: they are not
# AWS's doing, and retrying them in a loop would not help.


@contextmanager
def translating() -> Iterator[None]:
    """Re-raise AWS/network errors raised inside the block as Sluice errors (`from` the original).

    Works around `await` expressions too. Programming errors (TypeError, KeyError, ...) pass
    through untouched so bugs stay visible.
    """
    try:
        yield
    except TRANSLATED as exc:
        raise translate(exc) from exc
