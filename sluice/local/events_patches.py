"""EventBridge and S3-notification corrections of moto 5.2.5, for the moto embedded in the local
runtime (applied by `sluice.local.moto_patches.apply`). What AWS documents, and what moto did:

1. **PutEvents limits** (`EventsBackend.put_events`): moto accepted entries of any size and a
   `Detail` that is JSON but not an object (`"[1,2]"`, only a warning). AWS refuses a request
   whose entries total more than 256 KB, measured as AWS documents it (Time 14 bytes, then the
   UTF-8 bytes of Source, DetailType, Detail and each Resources entry), with
   `ValidationException` "Total size of the entries in the request is over the limit.", and
   answers a `Detail` that is not a JSON object with the per-entry error `MalformedDetail`
   "Detail is malformed." (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html,
   https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html).
2. **Replays ignored their window and filters** (`Replay.replay_events`): moto replayed every
   archived event to every rule of the bus. AWS replays the events between `EventStartTime`
   (inclusive) and `EventEndTime` to the rules of the destination (only those in
   `Destination.FilterArns` when given), marked with `replay-name`; archive rules never see a
   replayed event.
3. **PutEvents to a bus that does not exist** (`EventsBackend.put_events`): moto failed the
   whole request with `ResourceNotFoundException`. AWS answers the entry with an `EventId`, as
   for any accepted entry, and no rule sees it (FailedEntryCount 0; reported to AWS in
   aws/aws-cli#9186 and aws/aws-sdk#186 and unchanged). The runtime logs a warning naming the
   bus, so a misspelt name is still visible locally.
4. **S3 "Object Deleted"** (`S3Backend.delete_object`): moto sent an event only for deleting an
   unversioned object or the last version of a key, never for a delete marker. AWS sends one
   for each: `reason` `DeleteObject`, `deletion-type` `Permanently Deleted` (an unversioned
   object, or a version deleted by id) or `Delete Marker Created` (a versioned delete without
   a version id) (https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html).
5. **S3 "Object Created" for a multipart upload** (`S3Backend.complete_multipart_upload`): moto
   stores the assembled object through its own `put_object`, which notified "Object Created"
   with `reason` `PutObject`, and then notified again with `CompleteMultipartUpload`: two events
   for one object, so every consumer saw a large file twice. S3 sends one, with `reason`
   `CompleteMultipartUpload` (same EventBridge page).
6. **TestEventPattern** (`EventsBackend.test_event_pattern`, `EventsHandler.test_event_pattern`):
   moto raised NotImplementedError. The patch answers `{"Result": bool}` with the matcher that
   routes the runtime's events (moto's `EventPattern`, so a test and a delivery never disagree);
   an invalid pattern is `InvalidEventPatternException`, an `Event` that is not a JSON object
   with `id`, `account`, `source`, `time`, `region`, `resources` and `detail-type` is
   `ValidationException` "Parameter Event is not valid."
   (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_TestEventPattern.html).
   The producers ask it to find rules that still deliver an older major of a fact
   (`sluice_shared.subscribers`).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_ENTRY_BYTES = 256 * 1024
"""PutEvents: the most the entries of one request may total."""
SIZE_MESSAGE = "Total size of the entries in the request is over the limit."
EVENT_FIELDS = ("id", "account", "source", "time", "region", "resources", "detail-type")
"""TestEventPattern: the fields AWS requires of the `Event` to test."""
EVENT_MESSAGE = "Parameter Event is not valid."
DELETE_MARKER_ETAG = "d41d8cd98f00b204e9800998ecf8427e"
"""The ETag S3 reports for a delete marker (the MD5 of no bytes)."""

_deleting = threading.local()
_completing = threading.local()
_log = logging.getLogger(__name__)


def entry_size(entry: dict[str, Any]) -> int:
    """A PutEvents entry's size as AWS computes it (eb-putevent-size)."""
    size = 14 if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name) or "").encode())
    size += sum(len(str(r).encode()) for r in entry.get("Resources") or [])
    return size


def in_delete() -> bool:
    """True while the patched `delete_object` runs on this thread (moto's own "Object Deleted"
    is then left out: the patch sends the right one itself)."""
    return bool(getattr(_deleting, "active", False))


def apply() -> Callable[[], None]:
    """Apply the patches to the moto in this process.

    Returns:
        A callable that restores moto's original functions.
    """
    from moto.events.exceptions import ValidationException
    from moto.events.models import EventsBackend, Replay
    from moto.events.responses import EventsHandler
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    saved: list[tuple[Any, str, Any]] = [
        (EventsBackend, "put_events", EventsBackend.put_events),
        (Replay, "replay_events", Replay.replay_events),
        (S3Backend, "delete_object", S3Backend.delete_object),
        (S3Backend, "complete_multipart_upload", S3Backend.complete_multipart_upload),
        (S3Backend, "put_object", S3Backend.put_object),
        (EventsBackend, "test_event_pattern", EventsBackend.test_event_pattern),
        (EventsHandler, "test_event_pattern", EventsHandler.test_event_pattern),
    ]
    original_complete = S3Backend.complete_multipart_upload
    original_put_object = S3Backend.put_object
    original_put_events = EventsBackend.put_events
    original_delete = S3Backend.delete_object

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(events) <= 10 and sum(entry_size(e) for e in events) > MAX_ENTRY_BYTES:
            raise ValidationException(SIZE_MESSAGE)
        results: list[dict[str, Any] | None] = []
        valid: list[dict[str, Any]] = []
        for entry in events:
            if _detail_not_object(entry):
                results.append(
                    {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
                )
            elif _bus_missing(self, entry):
                bus = entry.get("EventBusName")
                _log.warning("PutEvents: no event bus %r; the event goes nowhere, as on AWS", bus)
                results.append({"EventId": str(uuid.uuid4())})
            else:
                results.append(None)
                valid.append(entry)
        answered = iter(original_put_events(self, valid) if valid else [])
        return [r if r is not None else next(answered) for r in results]

    def delete_object(
        self: Any,
        bucket_name: str,
        key_name: str,
        version_id: str | None = None,
        bypass: bool = False,
    ) -> tuple[bool, dict[str, Any]]:
        bucket = self.get_bucket(bucket_name)
        versioned = bool(getattr(bucket, "is_versioned", False))
        before = list(bucket.keys.getlist(key_name, [])) if key_name in bucket.keys else []
        _deleting.active = True
        try:
            deleted, meta = original_delete(self, bucket_name, key_name, version_id, bypass)
        finally:
            _deleting.active = False
        if not before:
            return deleted, meta
        removed: Any = None
        event = notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_EVENT
        if not versioned:
            removed = before[-1]
        elif version_id is None:
            after = bucket.keys.getlist(key_name, []) if key_name in bucket.keys else []
            removed = after[-1] if after else None
            event = notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT
        else:
            removed = next((k for k in before if str(k.version_id) == str(version_id)), None)
        if removed is not None:
            notifications.send_event(self.account_id, event, bucket, removed)
        return deleted, meta

    def complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        _completing.active = True
        try:
            return original_complete(self, *args, **kwargs)
        finally:
            _completing.active = False

    def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_completing, "active", False):
            # the object a CompleteMultipartUpload assembles: its one event comes from the
            # completion itself (reason CompleteMultipartUpload), not from this store
            kwargs["disable_notification"] = True
        return original_put_object(self, *args, **kwargs)

    setattr(S3Backend, "complete_multipart_upload", complete_multipart_upload)  # noqa: B010
    setattr(S3Backend, "put_object", put_object)  # noqa: B010
    setattr(EventsBackend, "put_events", put_events)  # noqa: B010
    setattr(Replay, "replay_events", _replay_events)  # noqa: B010
    setattr(S3Backend, "delete_object", delete_object)  # noqa: B010
    setattr(EventsBackend, "test_event_pattern", _test_event_pattern)  # noqa: B010
    setattr(EventsHandler, "test_event_pattern", _respond_test_event_pattern)  # noqa: B010

    def undo() -> None:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)

    return undo


def _test_event_pattern(self: Any, pattern: str | None, event: str | None) -> bool:
    """Whether `pattern` matches `event`, as the runtime's rules match (moto's EventPattern)."""
    import json

    from moto.events.exceptions import ValidationException
    from moto.events.models import EventPattern

    matcher = EventPattern.load(pattern)  # InvalidEventPatternException for a bad pattern
    try:
        body = json.loads(event or "")
    except ValueError:
        raise ValidationException(EVENT_MESSAGE) from None
    if not isinstance(body, dict) or any(name not in body for name in EVENT_FIELDS):
        raise ValidationException(EVENT_MESSAGE)
    return bool(matcher.matches_event(body))  # type: ignore[arg-type]


def _respond_test_event_pattern(self: Any) -> tuple[str, dict[str, Any]]:
    import json

    result = self.events_backend.test_event_pattern(
        self._get_param("EventPattern"), self._get_param("Event")
    )
    return json.dumps({"Result": result}), self.response_headers


def _bus_missing(backend: Any, entry: dict[str, Any]) -> bool:
    """The entry names a bus (by name or ARN) this account and region do not have."""
    name = backend._normalize_event_bus_arn(entry.get("EventBusName"))
    return name not in backend.event_buses


def _detail_not_object(entry: dict[str, Any]) -> bool:
    """A present `Detail` that parses as JSON but not as an object (moto answers the other
    malformed cases itself)."""
    import json

    detail = entry.get("Detail")
    if not detail or not entry.get("Source") or not entry.get("DetailType"):
        return False
    try:
        return not isinstance(json.loads(detail), dict)
    except ValueError:
        return False


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value)
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def _replay_events(self: Any, archive: Any) -> None:
    from moto.core.utils import unix_time
    from moto.events.models import ReplayState, events_backends

    backend = events_backends[self.account_id][self.region]
    bus = backend.describe_event_bus(self.destination["Arn"].split("/")[-1])
    allowed = set(self.destination.get("FilterArns") or [])
    start, end = _epoch(self.event_start_time), _epoch(self.event_end_time)
    for event in list(archive.events):
        when = _epoch(event.get("time"))
        if when is not None and (
            (start is not None and when < start) or (end is not None and when >= end)
        ):
            continue
        replayed = dict(event, id=str(uuid.uuid4()), **{"replay-name": self.name})
        for rule in list(bus.rules.values()):
            if allowed and rule.arn not in allowed:
                continue
            rule.send_to_targets(replayed, transform_input=False)  # type: ignore[arg-type]
    self.state = ReplayState.COMPLETED
    self.end_time = unix_time()
