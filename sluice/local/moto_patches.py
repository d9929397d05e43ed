"""Targeted corrections of moto 5.2.5, applied to the moto embedded in the local runtime.

Each patch replaces one moto function and is undone by the callable `apply()` returns (tests use
that to keep the process clean). What and why:

1. **SQS cost grows with queue depth** (measured: ≈21 receives/s at depth 100, 1/s at 1,000,
   0.3/s at 3,000; sends slow down the same way). moto reads the clock (a `datetime` subtraction)
   once or twice *per message* in `Queue.messages` and the two `ApproximateNumberOf…` counters, and
   rebuilds `Queue.attributes` (all three scans) for every message sent and — through the
   retention check — for every message received. The patch reads the clock once per scan and
   checks retention from the queue's own attribute. Semantics are unchanged (same visibility,
   delay, retention and redrive rules); `bench/local_sqs.py` has the figures.
2. **S3 → EventBridge** (`moto.s3.notifications._send_event_bridge_message`): moto delivers to
   rules on *every* bus, with a constant `sequencer`, `eTag` instead of `etag`, and `reason`
   `ObjectCreated`. AWS delivers to the account's default bus only, with a per-key increasing
   `sequencer`, `version-id` when the bucket is versioned, and `reason` `PutObject`/`CopyObject`/
   `CompleteMultipartUpload`; an "Object Deleted" has `reason` `DeleteObject` and a
   `deletion-type` (which deletes send one: `sluice.local.events_patches`).
3. **EventBridge rule targets** (`moto.events.models.Rule.send_to_targets`): moto fires disabled
   rules, ignores `Input`/`InputPath`, and fails `PutEvents` for Lambda and Step Functions targets.
   The patch hands every matched event to `sluice.local.targets.TargetDispatcher`.
4. **DynamoDB TransactWriteItems cost grows with table size** (measured on the ledger: 2.7 ms for
   a PutItem, 21 ms for a one-item transaction at 700 items, linear in the table): moto deep-copies
   every table a transaction names, before applying it, to roll back on failure. The ledger writes
   every status transition as a transaction, so a load test slowed down as the ledger grew. The
   patch snapshots only the items the transaction names and restores those on failure (the
   table is no longer copied); the outcome of every transaction is unchanged.
5. **Per-request backend lookup** (`moto.backends.list_of_moto_modules`): moto lists its package
   folder (`listdir` + an `isdir` per service, ~170) on every request, under the dispatcher's
   lock, so concurrent requests queue behind file-system calls. The folder never changes while
   the process runs: the patch lists it once. Then, also per request and under that lock,
   `DomainDispatcherApplication.get_backend_for_host` tries the host against the service list
   and then moto's URL patterns one by one (hundreds of regular expressions); its answer
   depends on the host alone (the list and the patterns are fixed), so the patch keeps each
   host's backend once found. Hosts without a backend are not kept (moto's own path prints its
   warning every time).
6. **DynamoDB responses cost ~0.1 ms per attribute** (`moto.core.serialize`): moto's generic
   serializer walks every `AttributeValue` member by member, trying several alias spellings
   (`S`, `s`, ...) per member, for every attribute of every item returned. Under the event-path
   benchmark this was 40 % of the runtime process's CPU. The patch writes a plain
   `AttributeValue` (the `{type: value}` dicts moto's DynamoDB results already are) directly,
   with the serializer's own rules (strings as `str`, binaries base64, `NULL`/`BOOL` as is);
   anything else takes moto's path. Same JSON out (tests compare both serializers).
7. **Per-request method listing** (`moto.core.responses.method_names_from_class`): every request
   lists its response class's methods with `inspect.getmembers` (~200 attributes) to check that
   the action exists. Classes do not change while the process runs: the patch lists each once.
8. **Condition expressions re-parsed per call** (`ConditionExpressionParser.parse`): moto lexes
   and parses every `ConditionExpression`/`FilterExpression` from scratch, twice per write (the
   request is validated, then the backend evaluates it; the ledger's version lock on each
   TransactWriteItems: ~7 % of the runtime process's CPU under the event-path benchmark). A
   parse is a pure function of the expression, its names and its values, and the tree is only
   read when evaluated. The patch's parser (`create_condition_expression_parser`, every binding)
   keeps the answers of recent (expression, names, values) triples, keyed by their JSON text:
   the tree, built by moto's own parser from private copies of the inputs, and the names and
   values it found (moto validates those). Anything not JSON-serializable, an empty expression
   and every parse error take moto's path every time.
9. **Bucket policies evaluated by moto** (`FakeBucket.get_permission`): moto applies a bucket
   policy's `Principal: "*"` statements to object requests, conditions ignored, so the templates'
   TLS-only Deny refused every object call to the plain-HTTP endpoint. Policies stay stored (and
   answered by `GetBucketPolicy`); the runtime's IAM enforcer (`sluice.local.iam`) decides.
10. **A queue policy lost on SetQueueAttributes** (`Queue._set_attributes`): moto sets `Policy`
    to None whenever the attributes set do not name it (AWS keeps it), so changing a queue's
    visibility timeout dropped its policy. The patch keeps the policy unless `Policy` is given.
11. **Policies without `Version` refused** (`IAMPolicyDocumentValidator._validate_version`):
    moto requires `"Version": "2012-10-17"`; IAM accepts a missing Version (it defaults to
    2008-10-17, policy variables then read literally) and `2008-10-17`, and the policies SAM's
    policy templates generate have none. The patch accepts what IAM accepts.
12. **DynamoDB items built in quadratic time** (`Item.__init__`): moto's attribute dict checks
    the 400 KB item limit on every insert by sizing every attribute already in it, so building
    an item sizes its attributes n²/2 times (nested values included). Every write builds one
    (the ledger's records carry their history: ~6 % of the runtime process's CPU under the
    event-path benchmark). The patch builds the attributes, then checks the limit once on their
    total: the same items are accepted and the same ones refused (`ItemSizeTooLarge`), since
    every insert's check is of a part of that total.
13. **Queue counts from different instants** (`SQSBackend.get_queue_attributes`): moto rebuilds
    `Queue.attributes` once per attribute asked for (and once more per name to check it), and
    each count reads the clock again. A message whose visibility timeout ran out between two
    readings counted as neither visible nor in flight: `ApproximateNumberOfMessages` and
    `ApproximateNumberOfMessagesNotVisible` both 0 while the message was still there, so a
    poller that waits for "every queue empty" stopped early. The patch reads the clock once per
    `GetQueueAttributes`: every count of one answer is taken at the same instant, as SQS's own
    counts are of one moment.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from sluice.local import events_patches, s3_patches

if TYPE_CHECKING:
    from collections.abc import Callable

    from sluice.local.targets import TargetDispatcher

_dispatcher: TargetDispatcher | None = None
_in_transaction = threading.local()
_sequencer = itertools.count(1)
_sequencer_lock = threading.Lock()
_sqs_instant = threading.local()
_REASONS = {
    "Put": "PutObject",
    "Post": "PostObject",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
    "Delete": "DeleteObject",
    "DeleteMarkerCreated": "DeleteObject",
}
_DELETION_TYPES = {
    "Delete": "Permanently Deleted",
    "DeleteMarkerCreated": "Delete Marker Created",
}


def set_dispatcher(dispatcher: TargetDispatcher | None) -> None:
    """Route EventBridge deliveries of the embedded moto to `dispatcher` (None: moto's own)."""
    global _dispatcher
    _dispatcher = dispatcher


def apply() -> Callable[[], None]:
    """Apply all patches to the moto in this process.

    Returns:
        A callable that restores moto's original functions.
    """
    from moto import backends
    from moto.core import responses as core_responses
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb import comparisons
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb import responses as dynamodb_responses
    from moto.dynamodb.models.dynamo_type import Item as DynamoItem
    from moto.events.models import Rule
    from moto.iam.policy_validation import IAMPolicyDocumentValidator
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.s3 import notifications
    from moto.s3.models import FakeBucket
    from moto.sqs.models import Queue, SQSBackend

    saved: list[tuple[Any, str, Any]] = [
        (Queue, "messages", Queue.__dict__["messages"]),
        (
            Queue,
            "approximate_number_of_messages_delayed",
            Queue.__dict__["approximate_number_of_messages_delayed"],
        ),
        (
            Queue,
            "approximate_number_of_messages_not_visible",
            Queue.__dict__["approximate_number_of_messages_not_visible"],
        ),
        (
            SQSBackend,
            "is_message_valid_based_on_retention_period",
            SQSBackend.is_message_valid_based_on_retention_period,
        ),
        (notifications, "_send_event_bridge_message", notifications._send_event_bridge_message),
        (Rule, "send_to_targets", Rule.send_to_targets),
        (
            dynamodb_models.DynamoDBBackend,
            "transact_write_items",
            dynamodb_models.DynamoDBBackend.transact_write_items,
        ),
        (dynamodb_models, "copy", getattr(dynamodb_models, "copy")),  # noqa: B009
        (backends, "list_of_moto_modules", backends.list_of_moto_modules),
        (
            DomainDispatcherApplication,
            "get_backend_for_host",
            DomainDispatcherApplication.get_backend_for_host,
        ),
        (
            BaseJSONSerializer,
            "_serialize_type_structure",
            BaseJSONSerializer.__dict__["_serialize_type_structure"],
        ),
        (
            core_responses,
            "method_names_from_class",
            getattr(core_responses, "method_names_from_class"),  # noqa: B009
        ),
        (FakeBucket, "get_permission", FakeBucket.get_permission),
        (Queue, "_set_attributes", Queue._set_attributes),
        (SQSBackend, "get_queue_attributes", SQSBackend.get_queue_attributes),
        (
            IAMPolicyDocumentValidator,
            "_validate_version",
            IAMPolicyDocumentValidator._validate_version,
        ),
        (DynamoItem, "__init__", DynamoItem.__init__),
        # moto's modules import the factory by name: each binding is replaced.
        *(
            (module, _PARSER_FACTORY, getattr(module, _PARSER_FACTORY))
            for module in (comparisons, dynamodb_models, dynamodb_responses)
        ),
    ]
    # setattr: moto's own annotations do not admit replacements, which is the point here.
    setattr(Queue, "messages", property(_visible_messages))  # noqa: B010
    setattr(Queue, "approximate_number_of_messages_delayed", property(_count_delayed))  # noqa: B010
    setattr(Queue, "approximate_number_of_messages_not_visible", property(_count_in_flight))  # noqa: B010
    setattr(SQSBackend, "is_message_valid_based_on_retention_period", _within_retention)  # noqa: B010
    original_queue_attributes = SQSBackend.get_queue_attributes

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> Any:
        from moto.core.utils import unix_time_millis

        _sqs_instant.millis = unix_time_millis()
        try:
            return original_queue_attributes(self, queue_name, attribute_names)
        finally:
            _sqs_instant.millis = None

    setattr(SQSBackend, "get_queue_attributes", get_queue_attributes)  # noqa: B010
    setattr(notifications, "_send_event_bridge_message", _send_s3_event_to_default_bus)  # noqa: B010
    original_send = Rule.send_to_targets

    def send_to_targets(self: Any, event: dict[str, Any], transform_input: bool = True) -> None:
        if _dispatcher is None:
            original_send(self, event, transform_input)  # type: ignore[arg-type]
            return
        _dispatcher.deliver_matched(self, event)

    setattr(Rule, "send_to_targets", send_to_targets)  # noqa: B010
    original_transact = dynamodb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        _transact_with_item_rollback(self, transact_items, original_transact)

    setattr(dynamodb_models.DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010
    setattr(dynamodb_models, "copy", _TableCopySkipper(getattr(dynamodb_models, "copy")))  # noqa: B009, B010
    modules = tuple(backends.list_of_moto_modules())
    setattr(backends, "list_of_moto_modules", lambda: modules)  # noqa: B010
    find_backend = DomainDispatcherApplication.get_backend_for_host
    found_backends: dict[tuple[int, str], Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host is None:
            return None
        key = (id(self), host)
        backend = found_backends.get(key)
        if backend is None:
            backend = find_backend(self, host)
            if backend is not None:
                found_backends[key] = backend
        return backend

    setattr(DomainDispatcherApplication, "get_backend_for_host", get_backend_for_host)  # noqa: B010
    original_structure = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(
        self: Any, serialized: dict[str, Any], value: Any, shape: Any, key: str
    ) -> None:
        if key and shape.name == "AttributeValue" and _is_dynamodb(self):
            plain = _attribute_value(self, value)
            if plain is not None:
                self._default_serialize(serialized, plain, shape, key)
                return
        original_structure(self, serialized, value, shape, key)

    setattr(BaseJSONSerializer, "_serialize_type_structure", serialize_structure)  # noqa: B010
    list_methods = getattr(core_responses, "method_names_from_class")  # noqa: B009
    methods: dict[Any, frozenset[str]] = {}

    def method_names_from_class(clazz: Any) -> frozenset[str]:
        names = methods.get(clazz)
        if names is None:
            names = methods[clazz] = frozenset(list_methods(clazz))
        return names

    setattr(core_responses, "method_names_from_class", method_names_from_class)  # noqa: B010
    parser_class = _caching_parser_class(comparisons.ConditionExpressionParser)
    for module in (comparisons, dynamodb_models, dynamodb_responses):
        setattr(module, _PARSER_FACTORY, parser_class)
    setattr(FakeBucket, "get_permission", _bucket_permission_neutral)  # noqa: B010
    original_set_attributes = Queue._set_attributes

    def set_attributes(self: Any, attributes: dict[str, Any], now: float | None = None) -> None:
        kept = getattr(self, "policy", None)
        original_set_attributes(self, attributes, now)
        if "Policy" not in attributes:
            self.policy = kept

    setattr(Queue, "_set_attributes", set_attributes)  # noqa: B010
    setattr(IAMPolicyDocumentValidator, "_validate_version", _validate_policy_version)  # noqa: B010
    setattr(DynamoItem, "__init__", _build_item)  # noqa: B010
    undo_s3 = s3_patches.apply()  # S3 byte copies: see sluice.local.s3_patches
    undo_events = events_patches.apply()  # PutEvents, replays, deletes: sluice.local.events_patches

    def undo() -> None:
        undo_events()
        undo_s3()
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)

    return undo


ITEM_SIZE_LIMIT = 405_000
"""moto's item size limit in bytes (AWS documents 400 KB; moto measured 409-410 KB)."""


def _build_item(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
    """`Item.__init__` with one size check: the attributes' total (names and values) against
    moto's limit, instead of a check per insert that sizes every attribute already there."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    self.hash_key = hash_key
    self.range_key = range_key
    values = {key: DynamoType(value) for key, value in attrs.items()}
    if sum(bytesize(key) + value.size() for key, value in values.items()) > ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    self.attrs = LimitedSizeDict(values)  # its constructor inserts without the per-key check


def _validate_policy_version(self: Any) -> None:
    """`IAMPolicyDocumentValidator._validate_version`, as IAM: absent, 2008-10-17 or 2012-10-17."""
    assert self._policy_json.get("Version", "2008-10-17") in ("2008-10-17", "2012-10-17")


def _bucket_permission_neutral(self: Any, action: str, resource: str) -> Any:
    """`FakeBucket.get_permission`: never a decision (the runtime's enforcer makes it)."""
    from moto.iam.access_control import PermissionResult

    return PermissionResult.NEUTRAL


class _TableCopySkipper:
    """Stands in for the `copy` module inside `moto.dynamodb.models`: while this thread runs a
    patched transaction, `deepcopy(<Table>)` returns the table itself (its rollback copy is not
    needed); everything else is copied as before."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_in_transaction, "active", False) and isinstance(value, Table):
            return value
        return self._module.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


_PARSER_FACTORY = "create_condition_expression_parser"
_PARSED_MAX = 1024
"""Parsed condition expressions kept (then the cache starts again; the ledger uses a handful)."""


def _caching_parser_class(parser_class: type[Any]) -> type[Any]:
    """A subclass of moto's `ConditionExpressionParser` whose `parse()` answers from a cache
    shared by its instances (see patch 8)."""
    parsed: dict[tuple[str, str, str], tuple[Any, tuple[str, ...], tuple[str, ...]]] = {}

    class CachingConditionExpressionParser(parser_class):  # type: ignore[misc]
        def parse(self) -> Any:
            expr = self.condition_expression
            names = self.expression_attribute_names
            values = self.expression_attribute_values
            if not expr:
                return super().parse()
            try:
                key = (expr, json.dumps(names), json.dumps(values))
            except (TypeError, ValueError):
                return super().parse()
            hit = parsed.get(key)
            if hit is None:
                # From copies: the tree keeps references to the values it is given, and the
                # caller's dicts are not ours to freeze.
                fresh = parser_class(expr, copy.deepcopy(names), copy.deepcopy(values))
                tree = fresh.parse()
                hit = (
                    tree,
                    tuple(fresh.expr_attr_names_found),
                    tuple(fresh.expr_attr_values_found),
                )
                if len(parsed) >= _PARSED_MAX:
                    parsed.clear()
                parsed[key] = hit
            self.expr_attr_names_found.extend(hit[1])
            self.expr_attr_values_found.extend(hit[2])
            return hit[0]

    return CachingConditionExpressionParser


def _transaction_key(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any] | None:
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None
    if op_type != "Put":
        key = op.get("Key")
        return key if isinstance(key, dict) else None
    attrs = op.get("Item") or {}
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if not all(name in attrs for name in names):
        return None
    return {name: attrs[name] for name in names}


def _transact_with_item_rollback(
    backend: Any, transact_items: list[dict[str, Any]], original: Callable[..., None]
) -> None:
    """Run moto's TransactWriteItems without copying whole tables: snapshot the named items,
    restore them if the transaction is cancelled or rejected."""
    import copy

    snapshots: list[tuple[str, dict[str, Any], Any]] = []
    for entry in transact_items if len(transact_items) <= 100 else []:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        op_type, op = next(iter(entry.items()))
        if not isinstance(op, dict):
            continue
        key = _transaction_key(backend, op_type, op)
        if key is None:
            continue
        try:
            current = backend.get_item(op["TableName"], key)
        except Exception:
            continue  # an invalid key: moto rejects the transaction before writing anything
        snapshots.append((op["TableName"], key, copy.deepcopy(current)))
    _in_transaction.active = True
    try:
        original(backend, transact_items)
    except Exception:
        for table_name, key, item in reversed(snapshots):
            if item is None:
                if backend.get_item(table_name, key) is not None:
                    backend.delete_item(table_name, key)
            else:
                backend.put_item(table_name, item.to_json()["Attributes"])
        raise
    finally:
        _in_transaction.active = False


_ATTRIBUTE_TYPES = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL")
"""The members of DynamoDB's `AttributeValue`, in the model's order."""
_NOT_PLAIN = object()


def _is_dynamodb(serializer: Any) -> bool:
    model = getattr(serializer, "operation_model", None)
    service = getattr(getattr(model, "service_model", None), "service_name", None)
    return service in ("dynamodb", "dynamodbstreams")


def _as_string(value: Any) -> Any:
    # moto's JSON string rule: str() of anything but None, {} and [].
    return str(value) if value not in (None, {}, []) else value


def _attribute_value(serializer: Any, value: Any) -> dict[str, Any] | None:
    """`value` serialized as moto's serializer would, or None when it is not a plain
    `{type: value}` dict (moto's own path then handles it)."""
    if not isinstance(value, dict) or not value.keys() <= frozenset(_ATTRIBUTE_TYPES):
        return None
    out: dict[str, Any] = {}
    for kind in _ATTRIBUTE_TYPES:
        member = value.get(kind)
        if member is None:
            continue
        converted = _member(serializer, kind, member)
        if converted is _NOT_PLAIN:
            return None
        out[kind] = converted
    return out


def _member(serializer: Any, kind: str, member: Any) -> Any:
    if kind in ("S", "N"):
        return _as_string(member)
    if kind == "B":
        return serializer._base64(member)
    if kind in ("NULL", "BOOL"):
        return member
    if not isinstance(member, dict | list):
        return _NOT_PLAIN
    if kind in ("SS", "NS"):
        return [_as_string(item) for item in member] if isinstance(member, list) else _NOT_PLAIN
    if kind == "BS":
        if not isinstance(member, list):
            return _NOT_PLAIN
        return [serializer._base64(item) if item is not None else None for item in member]
    if kind == "M":
        if not isinstance(member, dict):
            return _NOT_PLAIN
        mapped: dict[str, Any] = {}
        for name, item in member.items():
            if item is None:
                continue  # moto's map path skips a None structure
            converted = _attribute_value(serializer, item)
            if converted is None:
                return _NOT_PLAIN
            mapped[name] = converted
        return mapped
    if not isinstance(member, list):
        return _NOT_PLAIN
    listed: list[Any] = []
    for item in member:
        if item is None:
            listed.append(None)  # moto's list path keeps the raw None
            continue
        converted = _attribute_value(serializer, item)
        if converted is None:
            return _NOT_PLAIN
        listed.append(converted)
    return listed


def _sqs_now() -> float:
    """The SQS clock: the instant of the `GetQueueAttributes` being answered (patch 13), else
    a fresh reading."""
    from moto.core.utils import unix_time_millis

    instant: float | None = getattr(_sqs_instant, "millis", None)
    return unix_time_millis() if instant is None else instant


def _visible_messages(queue: Any) -> list[Any]:
    # One clock read per scan: moto's own property reads it twice per message.
    now = _sqs_now()
    return [m for m in queue._messages if now > m.visible_at and now >= m.delayed_until]


def _count_delayed(queue: Any) -> int:
    now = _sqs_now()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _count_in_flight(queue: Any) -> int:
    now = _sqs_now()
    return sum(1 for m in queue._messages if not now > m.visible_at)


def _within_retention(backend: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    queue = backend.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retain_until > unix_time())


def _next_sequencer() -> str:
    with _sequencer_lock:
        count = next(_sequencer)
    return f"{time.time_ns() // 1000:014X}{count:06X}"


def _send_s3_event_to_default_bus(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    from moto.events.models import events_backends
    from moto.s3.models import s3_backends
    from moto.s3.notifications import _detail_type

    if event_name.startswith("s3:ObjectTagging:"):
        # moto tags every PutObject (with an empty tag set) and notifies "Object Tags Added";
        # S3 notifies only when tags really change.
        tagger = s3_backends[account_id]["aws"].tagger
        if not tagger.list_tags_for_resource(key.arn).get("Tags"):
            return
    removed = event_name.startswith("s3:ObjectRemoved:")
    if removed and events_patches.in_delete():
        # moto's own notice of a delete: the patched delete_object sends the right one.
        return
    action = event_name.split(":")[-1]
    obj: dict[str, Any] = {"key": key.name}
    if not removed:
        obj["size"] = key.size
    etag = getattr(key, "etag", None)
    obj["etag"] = etag.replace('"', "") if etag else events_patches.DELETE_MARKER_ETAG
    version_id = getattr(key, "version_id", None)
    if version_id and version_id != "null" and getattr(bucket, "is_versioned", False):
        obj["version-id"] = version_id
    obj["sequencer"] = _next_sequencer()
    detail_extra = {"deletion-type": _DELETION_TYPES[action]} if action in _DELETION_TYPES else {}
    event = {
        "version": "0",
        "id": _uuid(),
        "detail-type": _detail_type(event_name),
        "source": "aws.s3",
        "account": account_id,
        "time": _iso_now(),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": _uuid()[:16].upper(),
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            "reason": _REASONS.get(action, action),
            **detail_extra,
        },
    }
    backend = events_backends[account_id][bucket.region_name]
    default_bus = backend.event_buses.get("default")
    if default_bus is None:
        return
    for rule in list(default_bus.rules.values()):
        rule.send_to_targets(event, transform_input=True)  # type: ignore[arg-type]


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
