"""Publishing events from a producer's own code: PutEvents entries, validated before sending.

The same calls work against AWS and the local runtime: the bus is a name or an ARN, and the
EventBridge client is boto3's (the `publish` extra), which reads `AWS_ENDPOINT_URL` itself
(`http://127.0.0.1:4566` locally, unset on AWS).

```python
from sluice_contracts import Envelope, publish

envelope = Envelope.wrap(InventoryCountedV1(sku="A-1", quantity=3), correlationid="count-7")
publish([envelope], bus="arn:aws:events:eu-west-1:123456789012:event-bus/sluice-prod")
```

`entries_json` renders entries the way `aws events put-events --entries file://entries.json`
reads them: `Detail` a JSON string, `Time` ISO 8601.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from contracts.envelope import ContractModel, Envelope, to_eventbridge_entry
from contracts.errors import SluiceError
from contracts.registry import ContractRegistry, parse_envelope

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

PUT_EVENTS_MAX_ENTRIES = 10
"""PutEvents takes at most 10 entries per call."""
BUS_ENV = "SLUICE_EVENT_BUS"
"""The environment variable `publish` reads the bus from when none is passed."""


class PublishFailed(SluiceError):
    """The bus refused one or more entries; `failures` holds (envelope id, ErrorCode, message).

    Nothing is retried here: an entry refused for a malformed request fails the same way again,
    and a throttled one is the caller's to retry with its own backoff.
    """

    code = "publish_failed"

    def __init__(self, message: str, failures: Sequence[tuple[str, str, str]] = ()) -> None:
        super().__init__(message)
        self.failures = tuple(failures)


def validated(
    event: Envelope[Any] | Mapping[str, Any] | str | bytes,
    *,
    registry: ContractRegistry | None = None,
) -> Envelope[Any]:
    """`event` as an envelope its contract accepts: an `Envelope` is re-read from its own JSON, a
    mapping or JSON text is parsed with the model of its `type` (`registry`, default the
    process-wide one holding the built-ins and everything `register`ed).

    Raises InvalidContract (every problem listed) or UnknownContractType.
    """
    if isinstance(event, Envelope):
        if registry is None and not isinstance(event.data, ContractModel):
            raise TypeError("an Envelope of untyped data needs a registry to be validated")
        model = type(event.data) if isinstance(event.data, ContractModel) else None
        reader = registry or ContractRegistry([model] if model is not None else [])
        return parse_envelope(event.to_json(), registry=reader)
    return parse_envelope(event, registry=registry)


def entries(envelopes: Iterable[Envelope[Any]], bus: str) -> list[dict[str, Any]]:
    """One PutEvents entry per envelope for `bus` (a name or an ARN), `Detail` a JSON string.

    Raises EventTooLarge for an entry above 256 KB.
    """
    if not bus:
        raise ValueError("no event bus: pass its name or ARN")
    return [to_eventbridge_entry(envelope, bus) for envelope in envelopes]


def entries_json(entries_: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Entries as JSON values, as `aws events put-events --entries file://...` reads them:
    `Detail` stays a JSON string and `Time` becomes ISO 8601 (UTC, `...Z`)."""
    rendered = []
    for entry in entries_:
        item = dict(entry)
        time = item.get("Time")
        if time is not None and not isinstance(time, str):
            item["Time"] = time.isoformat().replace("+00:00", "Z")
        rendered.append(item)
    return rendered


def events_client(endpoint_url: str | None = None) -> Any:
    """A boto3 EventBridge client; boto3 reads `AWS_ENDPOINT_URL` and the region from the usual
    places. Raises ImportError naming the extra to install when boto3 is missing."""
    try:
        import boto3
    except ImportError:
        raise ImportError(
            "publishing needs boto3: pip install 'sluice-contracts[publish]'"
        ) from None
    return boto3.client("events", endpoint_url=endpoint_url)


def publish(
    events: Iterable[Envelope[Any] | Mapping[str, Any] | str | bytes],
    *,
    bus: str | None = None,
    client: Any = None,
    registry: ContractRegistry | None = None,
) -> list[str]:
    """Validate every event, then put them on `bus` (default: `$SLUICE_EVENT_BUS`) in batches of
    ten. Returns the EventBridge event ids, in order.

    Nothing is sent unless every event is valid. `client` is an EventBridge client (default:
    `events_client()`). Raises InvalidContract/UnknownContractType (nothing sent), EventTooLarge,
    PublishFailed (the bus refused entries; earlier batches were sent) and botocore's errors for
    transport failures.
    """
    chosen = bus or os.environ.get(BUS_ENV, "")
    if not chosen:
        raise ValueError(f"no event bus: pass bus=NAME_OR_ARN or set {BUS_ENV}")
    envelopes = [validated(event, registry=registry) for event in events]
    batch = entries(envelopes, chosen)
    sender = client if client is not None else events_client()
    ids: list[str] = []
    failures: list[tuple[str, str, str]] = []
    for start in range(0, len(batch), PUT_EVENTS_MAX_ENTRIES):
        chunk = batch[start : start + PUT_EVENTS_MAX_ENTRIES]
        response = sender.put_events(Entries=chunk)
        for envelope, result in zip(
            envelopes[start : start + PUT_EVENTS_MAX_ENTRIES], response["Entries"], strict=True
        ):
            if "ErrorCode" in result:
                failures.append(
                    (envelope.id, str(result["ErrorCode"]), str(result.get("ErrorMessage", "")))
                )
            else:
                ids.append(str(result["EventId"]))
    if failures:
        listed = "; ".join(f"{eid}: {code} {message}".strip() for eid, code, message in failures)
        raise PublishFailed(
            f"the bus {chosen} refused {len(failures)} of {len(batch)} event(s): {listed}",
            failures,
        )
    return ids
