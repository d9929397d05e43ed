"""Creates a translated stack's resources locally, in dependency order.

Data-plane resources (buckets, queues, buses, rules, tables, parameters, KMS keys, log groups) are
created in the embedded moto through its API. Compute is registered with the runtime instead:
functions with the function runner, SQS event source mappings as pollers (never in moto: moto
would then consume the messages itself), state machines with the workflow engine, schedules with
the local scheduler. Resources with no local meaning are listed as skipped, with the reason.

Every property of a handled type is either honoured, accepted with a noted limitation, or fails
`up` with a `ProvisioningError` naming the resource and property. Re-provisioning is idempotent:
existing resources are updated in place, and physical ids of generated names are remembered.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sluice.local.errors import ProvisioningError
from sluice.local.poller import DEFAULT_CONCURRENCY, MappingConfig
from sluice.local.runner import FunctionConfig
from sluice.local.schedules import ScheduleError, parse_schedule
from sluice.local.template import (
    ACCOUNT_ID,
    CODE_BUCKET,
    REGION,
    Outputs,
    Resolver,
    Stack,
    dependency_order,
    localize_code,
    resolve_parameters,
    translate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path


@dataclass(frozen=True)
class ScheduleSpec:
    """A locally fired schedule: an EventBridge rule or an EventBridge Scheduler schedule."""

    name: str
    expression: str
    enabled: bool
    kind: str
    """`rule` (targets are the rule's, read from moto when fired) or `scheduler`."""
    bus: str = "default"
    target: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


class RuntimeSink(Protocol):
    """Where the provisioner registers what moto does not run."""

    async def register_function(self, config: FunctionConfig) -> None:
        """Add or update a function in the runner."""
        ...

    async def register_mapping(self, config: MappingConfig, queue_url: str) -> None:
        """Add or update an SQS event source mapping (a poller)."""
        ...

    async def register_state_machine(
        self, name: str, definition: str, role_arn: str, type_: str
    ) -> str:
        """Create or update a state machine on the workflow engine; returns its ARN."""
        ...

    async def register_schedule(self, spec: ScheduleSpec) -> None:
        """Add or update a locally fired schedule."""
        ...


@dataclass
class ResourceReport:
    """What `up` did with one resource."""

    stack: str
    logical_id: str
    type: str
    physical_id: str
    action: str
    """created | updated | emulated | skipped"""
    note: str = ""


@dataclass
class Limits:
    """Local caps on concurrency (one laptop, not a region)."""

    max_concurrency: int = DEFAULT_CONCURRENCY
    """Upper bound on an event source mapping's concurrent batches."""
    max_workers_per_function: int = 4


_SKIPPED = {
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::IAM::Policy": "IAM is not enforced locally",
    "AWS::IAM::ManagedPolicy": "IAM is not enforced locally",
    "AWS::Lambda::Permission": "resource policies are not enforced locally",
    # Not even stored: moto evaluates bucket policies, and the TLS-only Deny would refuse every
    # call to the plain-HTTP local endpoint.
    "AWS::S3::BucketPolicy": "not applied locally (TLS-only policies would deny plain HTTP)",
    "AWS::Events::EventBusPolicy": "bus policies are not enforced locally",
    "AWS::CloudWatch::Alarm": "no CloudWatch metrics locally",
    "AWS::CloudWatch::Dashboard": "no CloudWatch metrics locally",
    "AWS::EventSchemas::Registry": "moto has no EventBridge Schema Registry (schemas)",
    "AWS::EventSchemas::Schema": "moto has no EventBridge Schema Registry (schemas)",
    "AWS::XRay::Group": "X-Ray is not emulated",
    "AWS::XRay::SamplingRule": "X-Ray is not emulated",
    "AWS::SNS::Subscription": "alarm notifications are not emulated",
}


def _check_props(
    stack: str,
    logical_id: str,
    props: Mapping[str, Any],
    honoured: set[str],
    noted: Mapping[str, str],
) -> list[str]:
    """Fail on any property neither honoured nor noted; return the notes for the noted ones."""
    notes = []
    for name in props:
        if name in honoured:
            continue
        if name in noted:
            notes.append(f"{name}: {noted[name]}")
            continue
        raise ProvisioningError(
            "property is not supported by the local runtime",
            stack=stack,
            resource=logical_id,
            prop=name,
        )
    return notes


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _generated_name(stack: str, logical_id: str, limit: int = 64) -> str:
    suffix = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:12].upper()
    base = f"{stack}-{logical_id}"[: limit - 13]
    return f"{base}-{suffix}"


def _arn(service: str, resource: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


class Provisioner:
    """Provisions stacks into the embedded moto and the runtime.

    Args:
        clients: a callable returning an aiobotocore client for a service name (on the endpoint).
        sink: the runtime registrations.
        repo_root: where layers that were not built take their content from.
        limits: local concurrency caps.
    """

    def __init__(
        self,
        clients: Callable[[str], Any],
        sink: RuntimeSink,
        repo_root: Path,
        limits: Limits | None = None,
    ) -> None:
        self.clients = clients
        self.sink = sink
        self.repo_root = repo_root
        self.limits = limits or Limits()
        self.layers: dict[str, list[Path]] = {}
        self.physical: dict[tuple[str, str], str] = {}
        self.reports: list[ResourceReport] = []
        self._stack: Stack | None = None

    # ------------------------------------------------------------------ stacks

    async def provision(self, stack: Stack, overrides: Mapping[str, str]) -> list[ResourceReport]:
        """Provision one stack (translate, resolve, create in dependency order).

        Returns:
            One report per resource.

        Raises:
            ProvisioningError: anything the runtime cannot honour (nothing after it is created).
        """
        ssm = self.clients("ssm")

        async def read(name: str) -> str:
            try:
                response = await ssm.get_parameter(Name=name)
            except ssm.exceptions.ParameterNotFound as exc:
                raise KeyError(name) from exc
            return str(response["Parameter"]["Value"])

        values: dict[str, str] = {}
        for spec in (stack.template.get("Parameters") or {}).values():
            if str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value<"):
                default = spec.get("Default")
                if default is not None:
                    with contextlib.suppress(KeyError):
                        values[str(default)] = await read(str(default))
        for name in overrides.values():
            if name.startswith("/") and name not in values:
                with contextlib.suppress(KeyError):
                    values[name] = await read(name)

        def read_ssm(name: str) -> str:
            return values[name]

        parameters = resolve_parameters(stack, overrides, read_ssm)
        localize_code(stack)
        cfn = translate(stack, parameters)
        resources: dict[str, Any] = cfn.get("Resources") or {}
        outputs: dict[str, Outputs] = {}
        resolver = Resolver(stack.name, cfn, parameters, outputs)
        self._stack = stack
        reports: list[ResourceReport] = []
        for logical_id in dependency_order(resources):
            res = resources[logical_id]
            rtype = str(res.get("Type"))
            condition = res.get("Condition")
            if condition and not resolver.condition(str(condition)):
                continue
            props = resolver.resolve(res.get("Properties") or {}, logical_id) or {}
            report = ResourceReport(stack.name, logical_id, rtype, "", "created")
            out = await self._create(stack.name, logical_id, rtype, props, report)
            outputs[logical_id] = out
            report.physical_id = str(out.ref)
            reports.append(report)
        self.reports.extend(reports)
        return reports

    async def _create(
        self, stack: str, logical_id: str, rtype: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        if rtype in _SKIPPED:
            report.action = "skipped"
            report.note = _SKIPPED[rtype]
            return self._placeholder(stack, logical_id, rtype, props)
        handler = getattr(self, "_" + re.sub(r"\W", "_", rtype.removeprefix("AWS::")), None)
        if handler is None:
            raise ProvisioningError(
                f"resource type {rtype} is not supported by the local runtime",
                stack=stack,
                resource=logical_id,
            )
        result: Outputs = await handler(stack, logical_id, props, report)
        return result

    def _placeholder(
        self, stack: str, logical_id: str, rtype: str, props: Mapping[str, Any]
    ) -> Outputs:
        """Plausible Ref/GetAtt values for a skipped resource, so references still resolve."""
        name = str(
            props.get("RoleName")
            or props.get("RegistryName")
            or props.get("AlarmName")
            or props.get("DashboardName")
            or _generated_name(stack, logical_id)
        )
        service = rtype.split("::")[1].lower()
        if rtype == "AWS::IAM::Role":
            arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        elif rtype == "AWS::EventSchemas::Registry":
            arn = _arn("schemas", f"registry/{name}")
        elif rtype == "AWS::EventSchemas::Schema":
            arn = _arn("schemas", f"schema/{props.get('RegistryName')}/{props.get('SchemaName')}")
            name = arn
        else:
            arn = _arn(service, f"{logical_id}/{name}")
        return Outputs(
            ref=arn if rtype.startswith("AWS::EventSchemas") else name,
            attrs={
                "Arn": arn,
                "RoleId": f"AROA{hashlib.sha1(arn.encode()).hexdigest()[:16].upper()}",
                "RegistryName": str(props.get("RegistryName", name)),
                "RegistryArn": arn,
                "SchemaArn": arn,
                "SchemaName": str(props.get("SchemaName", "")),
                "SchemaVersion": "1",
            },
        )

    # ------------------------------------------------------------------ S3

    async def _S3__Bucket(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        report.note = "; ".join(
            _check_props(
                stack,
                logical_id,
                props,
                {
                    "BucketName",
                    "VersioningConfiguration",
                    "BucketEncryption",
                    "PublicAccessBlockConfiguration",
                    "NotificationConfiguration",
                    "OwnershipControls",
                    "Tags",
                    "CorsConfiguration",
                },
                {
                    "LifecycleConfiguration": "stored, never applied locally",
                    "LoggingConfiguration": "no server access logs locally",
                    "ObjectLockEnabled": "not enforced locally",
                    "ObjectLockConfiguration": "not enforced locally",
                    "IntelligentTieringConfigurations": "storage classes have no local meaning",
                    "MetricsConfigurations": "no CloudWatch metrics locally",
                },
            )
        )
        s3 = self.clients("s3")
        name = str(props.get("BucketName") or _generated_name(stack, logical_id, 63).lower())
        existing = {b["Name"] for b in (await s3.list_buckets()).get("Buckets", [])}
        if name in existing:
            report.action = "updated"
        else:
            await s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in props:
            await s3.put_bucket_versioning(
                Bucket=name,
                VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]},
            )
        if "BucketEncryption" in props:
            rules = []
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
                # CloudFormation's names differ from the API's.
                api_rule: dict[str, Any] = {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]
                }
                if "BucketKeyEnabled" in rule:
                    api_rule["BucketKeyEnabled"] = _bool(rule["BucketKeyEnabled"])
                rules.append(api_rule)
            await s3.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}
            )
        if "PublicAccessBlockConfiguration" in props:
            await s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"],
            )
        if "OwnershipControls" in props:
            await s3.put_bucket_ownership_controls(
                Bucket=name, OwnershipControls=props["OwnershipControls"]
            )
        if "Tags" in props:
            await s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": props["Tags"]})
        if "CorsConfiguration" in props:
            await s3.put_bucket_cors(
                Bucket=name,
                CORSConfiguration={"CORSRules": props["CorsConfiguration"]["CorsRules"]},
            )
        notification = props.get("NotificationConfiguration")
        if notification:
            extra = set(notification) - {"EventBridgeConfiguration"}
            if extra:
                raise ProvisioningError(
                    "only EventBridge notifications are emulated locally",
                    stack=stack,
                    resource=logical_id,
                    prop=f"NotificationConfiguration.{sorted(extra)[0]}",
                )
            bridge = notification.get("EventBridgeConfiguration") or {}
            config: dict[str, Any] = {}
            if str(bridge.get("EventBridgeEnabled", "true")).lower() == "true":
                config["EventBridgeConfiguration"] = {}
            await s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration=config
            )
        return Outputs(
            ref=name,
            attrs={
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
                "DualStackDomainName": f"{name}.s3.dualstack.{REGION}.amazonaws.com",
                "WebsiteURL": f"http://{name}.s3-website-{REGION}.amazonaws.com",
            },
        )

    # ------------------------------------------------------------------ SQS

    _QUEUE_ATTRS = (
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled",
    )

    async def _SQS__Queue(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(stack, logical_id, props, {"QueueName", "Tags", *self._QUEUE_ATTRS}, {})
        sqs = self.clients("sqs")
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        default = _generated_name(stack, logical_id, 75) + (".fifo" if fifo else "")
        name = str(props.get("QueueName") or default)
        attributes: dict[str, str] = {}
        for key in self._QUEUE_ATTRS:
            if key not in props:
                continue
            value = props[key]
            if isinstance(value, dict):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = str(value).lower()
            attributes[key] = str(value)
        try:
            url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
            await sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
            report.action = "updated"
        except sqs.exceptions.QueueDoesNotExist:
            url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
        if props.get("Tags"):
            await sqs.tag_queue(QueueUrl=url, Tags={t["Key"]: t["Value"] for t in props["Tags"]})
        arn = _arn("sqs", name)
        return Outputs(ref=url, attrs={"Arn": arn, "QueueName": name, "QueueUrl": url})

    async def _SQS__QueuePolicy(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(stack, logical_id, props, {"Queues", "PolicyDocument"}, {})
        sqs = self.clients("sqs")
        for url in props["Queues"]:
            await sqs.set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )
        report.note = "stored, not enforced locally"
        return Outputs(ref=_generated_name(stack, logical_id))

    # ------------------------------------------------------------------ EventBridge

    async def _Events__EventBus(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        report.note = "; ".join(
            _check_props(
                stack,
                logical_id,
                props,
                {"Name", "Tags", "Description"},
                {
                    "Policy": "bus policies are not enforced locally",
                    "KmsKeyIdentifier": "events are not encrypted locally",
                    "DeadLetterConfig": "bus-level DLQ not emulated",
                },
            )
        )
        events = self.clients("events")
        name = str(props["Name"])
        try:
            await events.create_event_bus(Name=name)
        except events.exceptions.ResourceAlreadyExistsException:
            report.action = "updated"
        arn = _arn("events", f"event-bus/{name}")
        return Outputs(ref=name, attrs={"Arn": arn, "Name": name})

    _TARGET_KEYS = frozenset(
        {
            "Arn",
            "Id",
            "Input",
            "InputPath",
            "InputTransformer",
            "DeadLetterConfig",
            "RetryPolicy",
            "RoleArn",
            "SqsParameters",
        }
    )

    async def _Events__Rule(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(
            stack,
            logical_id,
            props,
            {
                "Name",
                "EventBusName",
                "EventPattern",
                "ScheduleExpression",
                "State",
                "Targets",
                "Description",
                "RoleArn",
            },
            {},
        )
        events = self.clients("events")
        name = str(props.get("Name") or _generated_name(stack, logical_id))
        bus = str(props.get("EventBusName") or "default").rsplit("/", 1)[-1]
        state = str(props.get("State", "ENABLED"))
        args: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": state}
        if "EventPattern" in props:
            pattern = props["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        schedule = props.get("ScheduleExpression")
        if schedule:
            try:
                parse_schedule(str(schedule))
            except ScheduleError as exc:
                raise ProvisioningError(
                    str(exc), stack=stack, resource=logical_id, prop="ScheduleExpression"
                ) from exc
            args["ScheduleExpression"] = str(schedule)
        if props.get("Description"):
            args["Description"] = str(props["Description"])
        await events.put_rule(**args)
        targets = []
        for target in props.get("Targets") or []:
            extra = set(target) - self._TARGET_KEYS
            if extra:
                raise ProvisioningError(
                    "target property is not supported by the local runtime",
                    stack=stack,
                    resource=logical_id,
                    prop=f"Targets.{sorted(extra)[0]}",
                )
            service = str(target["Arn"]).split(":")[2]
            if service not in ("sqs", "lambda", "states", "events", "logs"):
                raise ProvisioningError(
                    f"{service} targets are not emulated locally",
                    stack=stack,
                    resource=logical_id,
                    prop="Targets.Arn",
                )
            clean = dict(target)
            if isinstance(clean.get("InputTransformer", {}).get("InputPathsMap"), dict):
                clean["InputTransformer"] = dict(clean["InputTransformer"])
            targets.append(clean)
        if targets:
            await events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        notes = []
        if any("RetryPolicy" in t for t in targets):
            notes.append("RetryPolicy: delivery is in-process, failures go to the DLQ at once")
        if schedule:
            await self.sink.register_schedule(
                ScheduleSpec(name, str(schedule), state == "ENABLED", "rule", bus)
            )
            notes.append(f"fired locally: {schedule}")
        report.note = "; ".join(notes)
        arn = _arn("events", f"rule/{name}" if bus == "default" else f"rule/{bus}/{name}")
        ref = name if bus == "default" else f"{bus}|{name}"
        return Outputs(ref=ref, attrs={"Arn": arn})

    async def _Scheduler__Schedule(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(
            stack,
            logical_id,
            props,
            {"Name", "ScheduleExpression", "State", "Target", "FlexibleTimeWindow", "Description"},
            {"GroupName": "schedule groups are not emulated"},
        )
        timezone = props.get("ScheduleExpressionTimezone")
        if timezone not in (None, "UTC", "Etc/UTC"):
            raise ProvisioningError(
                "only UTC schedules are emulated",
                stack=stack,
                resource=logical_id,
                prop="ScheduleExpressionTimezone",
            )
        expression = str(props["ScheduleExpression"])
        try:
            parse_schedule(expression)
        except ScheduleError as exc:
            raise ProvisioningError(
                str(exc), stack=stack, resource=logical_id, prop="ScheduleExpression"
            ) from exc
        target = dict(props["Target"])
        service = str(target["Arn"]).split(":")[2]
        if service not in ("sqs", "lambda", "states"):
            raise ProvisioningError(
                f"{service} scheduler targets are not emulated locally",
                stack=stack,
                resource=logical_id,
                prop="Target.Arn",
            )
        name = str(props.get("Name") or _generated_name(stack, logical_id))
        enabled = str(props.get("State", "ENABLED")) == "ENABLED"
        await self.sink.register_schedule(
            ScheduleSpec(name, expression, enabled, "scheduler", target=target)
        )
        report.action = "emulated"
        report.note = f"fired locally: {expression}" + ("" if enabled else " (DISABLED)")
        arn = _arn("scheduler", f"schedule/default/{name}")
        return Outputs(ref=name, attrs={"Arn": arn})

    # ------------------------------------------------------------------ DynamoDB

    async def _DynamoDB__Table(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        notes = _check_props(
            stack,
            logical_id,
            props,
            {
                "TableName",
                "KeySchema",
                "AttributeDefinitions",
                "BillingMode",
                "ProvisionedThroughput",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "StreamSpecification",
                "SSESpecification",
                "TimeToLiveSpecification",
                "Tags",
                "TableClass",
                "DeletionProtectionEnabled",
            },
            {
                "PointInTimeRecoverySpecification": "backups have no local meaning",
                "ContributorInsightsSpecification": "no CloudWatch locally",
            },
        )
        ddb = self.clients("dynamodb")
        name = str(props.get("TableName") or _generated_name(stack, logical_id, 255))
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in ("ProvisionedThroughput", "LocalSecondaryIndexes", "StreamSpecification"):
            if key in props:
                args[key] = props[key]
        if "GlobalSecondaryIndexes" in props:
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if "SSESpecification" in props:
            sse = dict(props["SSESpecification"])
            sse["Enabled"] = str(sse.get("SSEEnabled", sse.get("Enabled", "false"))).lower() == (
                "true"
            )
            sse.pop("SSEEnabled", None)
            args["SSESpecification"] = sse
        if props.get("Tags"):
            args["Tags"] = props["Tags"]
        try:
            await ddb.create_table(**args)
        except ddb.exceptions.ResourceInUseException:
            report.action = "updated"
        ttl = props.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled", "false")).lower() == "true":
            await ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
            notes.append("TimeToLiveSpecification: stored; moto never expires items")
        report.note = "; ".join(notes)
        described = (await ddb.describe_table(TableName=name))["Table"]
        attrs = {"Arn": described["TableArn"]}
        if described.get("LatestStreamArn"):
            attrs["StreamArn"] = described["LatestStreamArn"]
        return Outputs(ref=name, attrs=attrs)

    # ------------------------------------------------------------------ SSM, KMS, logs, SNS

    async def _SSM__Parameter(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(
            stack,
            logical_id,
            props,
            {"Name", "Type", "Value", "Description", "Tier", "AllowedPattern", "Tags", "DataType"},
            {},
        )
        name = str(props.get("Name") or f"/{stack}/{logical_id}")
        args: dict[str, Any] = {
            "Name": name,
            "Value": str(props["Value"]),
            "Type": str(props.get("Type", "String")),
            "Overwrite": True,
        }
        for key in ("Description", "Tier", "AllowedPattern", "DataType"):
            if key in props:
                args[key] = str(props[key])
        await self.clients("ssm").put_parameter(**args)
        return Outputs(ref=name, attrs={"Type": args["Type"], "Value": args["Value"]})

    async def _KMS__Key(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        notes = _check_props(
            stack,
            logical_id,
            props,
            {"Description", "KeyPolicy", "KeyUsage", "KeySpec", "Tags", "Enabled"},
            {
                "EnableKeyRotation": "rotation has no local meaning",
                "PendingWindowInDays": "keys are never deleted locally",
                "MultiRegion": "one region locally",
            },
        )
        key_id = self.physical.get((stack, logical_id))
        kms = self.clients("kms")
        if key_id is None:
            args: dict[str, Any] = {"Description": str(props.get("Description", ""))}
            if "KeyPolicy" in props:
                args["Policy"] = json.dumps(props["KeyPolicy"])
            key_id = str((await kms.create_key(**args))["KeyMetadata"]["KeyId"])
            self.physical[(stack, logical_id)] = key_id
        else:
            report.action = "updated"
        report.note = "; ".join(notes)
        return Outputs(ref=key_id, attrs={"Arn": _arn("kms", f"key/{key_id}"), "KeyId": key_id})

    async def _KMS__Alias(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(stack, logical_id, props, {"AliasName", "TargetKeyId"}, {})
        kms = self.clients("kms")
        name = str(props["AliasName"])
        aliases = {a["AliasName"] for a in (await kms.list_aliases()).get("Aliases", [])}
        if name in aliases:
            await kms.update_alias(AliasName=name, TargetKeyId=str(props["TargetKeyId"]))
            report.action = "updated"
        else:
            await kms.create_alias(AliasName=name, TargetKeyId=str(props["TargetKeyId"]))
        return Outputs(ref=name)

    async def _Logs__LogGroup(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(
            stack,
            logical_id,
            props,
            {"LogGroupName", "RetentionInDays", "Tags"},
            {"KmsKeyId": "log files are not encrypted locally", "LogGroupClass": "n/a locally"},
        )
        logs = self.clients("logs")
        name = str(props.get("LogGroupName") or f"/{stack}/{logical_id}")
        try:
            await logs.create_log_group(logGroupName=name)
        except logs.exceptions.ResourceAlreadyExistsException:
            report.action = "updated"
        if "RetentionInDays" in props:
            await logs.put_retention_policy(
                logGroupName=name, retentionInDays=int(props["RetentionInDays"])
            )
        report.note = "function logs are written to <state-dir>/logs/<function>.log"
        return Outputs(ref=name, attrs={"Arn": _arn("logs", f"log-group:{name}:*")})

    async def _SNS__Topic(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(stack, logical_id, props, {"TopicName", "Tags", "DisplayName"}, {})
        name = str(props.get("TopicName") or _generated_name(stack, logical_id, 256))
        arn = (await self.clients("sns").create_topic(Name=name))["TopicArn"]
        report.note = "subscriptions are not delivered locally"
        return Outputs(ref=arn, attrs={"TopicArn": arn, "TopicName": name})

    # ------------------------------------------------------------------ Lambda

    def _code_dir(self, stack: str, logical_id: str, prop: str, code: Any) -> Path:
        if not isinstance(code, dict) or code.get("S3Bucket") != CODE_BUCKET:
            raise ProvisioningError(
                "code must come from a local folder (CodeUri/ContentUri path)",
                stack=stack,
                resource=logical_id,
                prop=prop,
            )
        assert self._stack is not None
        return self._stack.code[str(code["S3Key"])]

    async def _Lambda__LayerVersion(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(
            stack,
            logical_id,
            props,
            {"Content", "LayerName", "Description", "CompatibleRuntimes"},
            {
                "CompatibleArchitectures": "workers run on this machine's architecture",
                "LicenseInfo": "n/a locally",
            },
        )
        self._code_dir(stack, logical_id, "Content", props["Content"])
        name = str(props.get("LayerName") or _generated_name(stack, logical_id))
        arn = _arn("lambda", f"layer:{name}:1")
        # The layer's content (contracts, sluice_shared, pinned dependencies) is already importable
        # from the project environment (editable install). A built layer (`make layer`) holds
        # Lambda's arm64/python3.12 wheels, which do not import on this machine.
        self.layers[arn] = []
        report.note = "content from the project environment (editable install)"
        report.action = "emulated"
        return Outputs(ref=arn, attrs={"LayerVersionArn": arn})

    async def _Lambda__Function(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        notes = _check_props(
            stack,
            logical_id,
            props,
            {
                "FunctionName",
                "Handler",
                "Runtime",
                "Code",
                "MemorySize",
                "Timeout",
                "Environment",
                "Layers",
                "Role",
                "Tags",
                "LoggingConfig",
                "ReservedConcurrentExecutions",
                "Description",
            },
            {
                "Architectures": "workers run on this machine's architecture",
                "TracingConfig": "X-Ray is not emulated",
                "KmsKeyArn": "environment variables are not encrypted locally",
                "EphemeralStorage": "/tmp is the machine's",
                "DeadLetterConfig": "async invoke DLQ not emulated",
                "VpcConfig": "no VPC locally",
            },
        )
        runtime = str(props.get("Runtime", ""))
        if not runtime.startswith("python3"):
            raise ProvisioningError(
                f"runtime {runtime!r}: only python3.x functions run locally",
                stack=stack,
                resource=logical_id,
                prop="Runtime",
            )
        code = self._code_dir(stack, logical_id, "Code", props["Code"])
        layers: list[Path] = []
        for arn in props.get("Layers") or []:
            if str(arn) not in self.layers:
                raise ProvisioningError(
                    f"layer {arn} was not provisioned locally",
                    stack=stack,
                    resource=logical_id,
                    prop="Layers",
                )
            layers += self.layers[str(arn)]
        name = str(props.get("FunctionName") or _generated_name(stack, logical_id))
        env = (props.get("Environment") or {}).get("Variables") or {}
        reserved = props.get("ReservedConcurrentExecutions")
        workers = self.limits.max_workers_per_function
        if reserved is not None:
            workers = max(1, min(workers, int(reserved)))
        await self.sink.register_function(
            FunctionConfig(
                name=name,
                handler=str(props["Handler"]),
                code_dir=code,
                layers=tuple(layers),
                env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
                timeout_s=float(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
                runtime=runtime,
                architecture=str((props.get("Architectures") or ["x86_64"])[0]),
                max_workers=workers,
            )
        )
        report.action = "emulated"
        report.note = "; ".join([f"runner: {code}", *notes])
        arn = _arn("lambda", f"function:{name}")
        return Outputs(ref=name, attrs={"Arn": arn})

    async def _Lambda__EventSourceMapping(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        _check_props(
            stack,
            logical_id,
            props,
            {
                "EventSourceArn",
                "FunctionName",
                "BatchSize",
                "MaximumBatchingWindowInSeconds",
                "FunctionResponseTypes",
                "ScalingConfig",
                "Enabled",
            },
            {},
        )
        source = str(props["EventSourceArn"])
        if source.split(":")[2] != "sqs":
            raise ProvisioningError(
                "only SQS event sources are emulated locally",
                stack=stack,
                resource=logical_id,
                prop="EventSourceArn",
            )
        wanted = int((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 0) or 0)
        concurrency = min(wanted or self.limits.max_concurrency, self.limits.max_concurrency)
        config = MappingConfig(
            function_name=str(props["FunctionName"]),
            queue_arn=source,
            batch_size=int(props.get("BatchSize", 10)),
            batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures"
            in (props.get("FunctionResponseTypes") or []),
            max_concurrency=concurrency,
            enabled=str(props.get("Enabled", "true")).lower() == "true",
        )
        sqs = self.clients("sqs")
        queue_url = (await sqs.get_queue_url(QueueName=source.split(":")[5]))["QueueUrl"]
        await self.sink.register_mapping(config, queue_url)
        report.action = "emulated"
        report.note = f"poller, {concurrency} concurrent batch(es)" + (
            f" (template asks {wanted}; local cap {self.limits.max_concurrency})"
            if wanted > concurrency
            else ""
        )
        ident = hashlib.sha256(f"{source}|{props['FunctionName']}".encode()).hexdigest()
        uuid = f"{ident[:8]}-{ident[8:12]}-{ident[12:16]}-{ident[16:20]}-{ident[20:32]}"
        return Outputs(ref=uuid, attrs={"EventSourceMappingArn": _arn("lambda", f"esm:{uuid}")})

    async def _Lambda__Version(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        name = str(props["FunctionName"])
        report.action = "emulated"
        report.note = "versions resolve to $LATEST locally"
        arn = _arn("lambda", f"function:{name}:1")
        return Outputs(ref=arn, attrs={"Version": "1", "FunctionArn": arn})

    async def _Lambda__Alias(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        name = str(props["FunctionName"]).split(":")[-1]
        report.action = "emulated"
        report.note = "aliases resolve to $LATEST locally"
        arn = _arn("lambda", f"function:{name}:{props['Name']}")
        return Outputs(ref=arn, attrs={"AliasArn": arn})

    # ------------------------------------------------------------------ Step Functions

    async def _StepFunctions__StateMachine(
        self, stack: str, logical_id: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        notes = _check_props(
            stack,
            logical_id,
            props,
            {
                "StateMachineName",
                "Definition",
                "DefinitionString",
                "DefinitionSubstitutions",
                "RoleArn",
                "StateMachineType",
                "Tags",
            },
            {
                "LoggingConfiguration": "execution history is kept by the engine instead",
                "TracingConfiguration": "X-Ray is not emulated",
            },
        )
        definition = props.get("DefinitionString")
        if definition is None:
            definition = json.dumps(props.get("Definition") or {})
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            definition = str(definition).replace("${" + str(key) + "}", str(value))
        leftover = re.search(r"\$\{([A-Za-z0-9_]+)\}", str(definition))
        if leftover:
            raise ProvisioningError(
                f"placeholder ${{{leftover.group(1)}}} has no DefinitionSubstitutions entry",
                stack=stack,
                resource=logical_id,
                prop="DefinitionSubstitutions",
            )
        name = str(props.get("StateMachineName") or _generated_name(stack, logical_id, 80))
        arn = await self.sink.register_state_machine(
            name,
            str(definition),
            str(props.get("RoleArn") or f"arn:aws:iam::{ACCOUNT_ID}:role/local"),
            str(props.get("StateMachineType", "STANDARD")),
        )
        report.action = "emulated"
        report.note = "; ".join(["workflow engine", *notes])
        return Outputs(ref=arn, attrs={"Arn": arn, "Name": name})
