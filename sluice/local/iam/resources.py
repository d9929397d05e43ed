"""The resource-based policies of the runtime: the `ResourcePolicyStore` the enforcer reads.

Where each kind lives:

- bucket policies (`AWS::S3::BucketPolicy`, `PutBucketPolicy`): in the embedded moto, so
  `get-bucket-policy` answers; moto's own evaluation of them is switched off
  (`moto_patches`), the enforcer decides;
- queue policies (`AWS::SQS::QueuePolicy`, the `Policy` attribute): in moto;
- role trust policies: the roles' `AssumeRolePolicyDocument` in moto's IAM;
- event-bus policies (`AWS::Events::EventBusPolicy`, a bus's `Policy` property) and function
  policies (`AWS::Lambda::Permission`): here (moto's bus policy merges statements by principal,
  which loses statements, and Lambda never reaches moto).

Documents read from moto are parsed once per distinct text, so the enforcer's parse cache (keyed
by document object) keeps working while a policy is unchanged.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.local.iam.ports import PolicyDocument
    from sluice.local.iam.principals import PrincipalRegistry

VERSION = "2012-10-17"


class ResourcePolicyRegistry:
    """Resource-based policies by resource ARN (thread-safe).

    Args:
        account: the local account id.
        region: the local region.
        principals: where role trust policies are read.
    """

    def __init__(self, account: str, region: str, principals: PrincipalRegistry) -> None:
        self.account = account
        self.region = region
        self.principals = principals
        self._lock = threading.Lock()
        self._bus_statements: dict[str, dict[str, dict[str, Any]]] = {}
        self._function_statements: dict[str, dict[str, dict[str, Any]]] = {}
        self._documents: dict[str, PolicyDocument] = {}
        self._built: dict[str, PolicyDocument] = {}

    # ------------------------------------------------------------------ writes

    def put_bus_statement(self, bus_arn: str, sid: str, statement: dict[str, Any]) -> None:
        """Add or replace one statement (by `Sid`) of a bus policy."""
        with self._lock:
            self._bus_statements.setdefault(bus_arn, {})[sid] = {**statement, "Sid": sid}
            self._built.pop(bus_arn, None)

    def set_bus_policy(self, bus_arn: str, document: PolicyDocument) -> None:
        """Replace a bus policy with `document` (a bus's `Policy` property)."""
        statements = document.get("Statement") or []
        if isinstance(statements, dict):
            statements = [statements]
        with self._lock:
            self._bus_statements[bus_arn] = {
                str(s.get("Sid") or f"statement-{i}"): dict(s) for i, s in enumerate(statements)
            }
            self._built.pop(bus_arn, None)

    def put_function_statement(
        self, function_arn: str, sid: str, statement: dict[str, Any]
    ) -> None:
        """Add or replace one statement (by `Sid`) of a function policy (a Lambda permission)."""
        with self._lock:
            self._function_statements.setdefault(function_arn, {})[sid] = {**statement, "Sid": sid}
            self._built.pop(function_arn, None)

    # ------------------------------------------------------------------ ResourcePolicyStore

    def policy_for(self, resource_arn: str) -> PolicyDocument | None:
        """See `ResourcePolicyStore.policy_for`."""
        parts = resource_arn.split(":", 5)
        if len(parts) < 6:
            return None
        service, resource = parts[2], parts[5]
        if service == "s3":
            return self._bucket_policy(resource.split("/", 1)[0])
        if service == "sqs":
            return self._queue_policy(parts[4], parts[3], resource)
        if service == "iam" and resource.startswith("role/"):
            return self.principals.trust_policy(resource_arn)
        if service == "events" and resource.startswith("event-bus/"):
            return self._built_policy(resource_arn, self._bus_statements)
        if service == "lambda" and resource.startswith("function:"):
            # A qualified ARN (`:function:name:alias`) is governed by the function's policy.
            base = ":".join(resource_arn.split(":")[:7])
            return self._built_policy(base, self._function_statements)
        return None

    def describe(self) -> dict[str, list[str]]:
        """Which resources hold a policy kept here (for the state endpoint)."""
        with self._lock:
            return {
                "event_buses": sorted(self._bus_statements),
                "functions": sorted(self._function_statements),
            }

    # ------------------------------------------------------------------ reads

    def _built_policy(
        self, arn: str, source: dict[str, dict[str, dict[str, Any]]]
    ) -> PolicyDocument | None:
        built = self._built.get(arn)
        if built is not None:
            return built
        with self._lock:
            statements = source.get(arn)
            if not statements:
                return None
            built = {"Version": VERSION, "Statement": list(statements.values())}
            self._built[arn] = built
            return built

    def _bucket_policy(self, bucket: str) -> PolicyDocument | None:
        from moto.s3.models import s3_backends

        found = s3_backends[self.account]["aws"].buckets.get(bucket)
        if found is None or not found.policy:
            return None
        text = found.policy
        return self._document(text.decode() if isinstance(text, bytes) else str(text))

    def _queue_policy(self, account: str, region: str, name: str) -> PolicyDocument | None:
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[account][region].queues.get(name)
        if queue is None or not queue.policy:
            return None
        return self._document(str(queue.policy))

    def _document(self, text: str) -> PolicyDocument:
        document = self._documents.get(text)
        if document is None:
            parsed = json.loads(text)
            document = parsed if isinstance(parsed, dict) else {}
            with self._lock:
                document = self._documents.setdefault(text, document)
        return document
