"""`AWS::Lambda::*`: functions run by the local function runner, SQS event source mappings by
the local pollers, layers from the project environment, permissions kept as function policies;
versions and aliases resolve to `$LATEST`; `EventInvokeConfig` sets the retries, maximum event
age and destinations of asynchronous invocations."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, ClassVar

from sluice.local.iam.enforcer import AccessDeniedError
from sluice.local.poller import MappingConfig
from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    arn,
    generated_name,
    register,
)
from sluice.local.runner import AsyncInvokeConfig, FunctionConfig, FunctionNotFound
from sluice.local.template import CODE_BUCKET, Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def code_dir(provider: ResourceProvider, request: ResourceRequest, prop: str, code: Any) -> Path:
    """The local folder a `Code`/`Content` property points at (localized by `template`).

    Raises:
        ProvisioningError: code that does not come from a local folder.
    """
    if not isinstance(code, dict) or code.get("S3Bucket") != CODE_BUCKET:
        raise request.error("code must come from a local folder (CodeUri/ContentUri path)", prop)
    assert provider.ctx.stack is not None
    return provider.ctx.stack.code[str(code["S3Key"])]


@register
class LayerVersionProvider(ResourceProvider):
    """A layer; its content comes from the project environment."""

    type_name = "AWS::Lambda::LayerVersion"
    honoured = frozenset({"Content", "LayerName", "Description", "CompatibleRuntimes"})
    noted: ClassVar[Mapping[str, str]] = {
        "CompatibleArchitectures": "workers run on this machine's architecture",
        "LicenseInfo": "n/a locally",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        code_dir(self, request, "Content", request.props["Content"])
        name = str(
            request.props.get("LayerName") or generated_name(request.stack, request.logical_id)
        )
        layer_arn = arn("lambda", f"layer:{name}:1")
        # The layer's content (contracts, sluice_shared, pinned dependencies) is already importable
        # from the project environment (editable install). A built layer (`make layer`) holds
        # Lambda's arm64/python3.12 wheels, which do not import on this machine.
        self.ctx.layers[layer_arn] = []
        request.report.note = "content from the project environment (editable install)"
        request.report.action = "emulated"
        return Outputs(ref=layer_arn, attrs={"LayerVersionArn": layer_arn})


@register
class FunctionProvider(ResourceProvider):
    """A Python function, registered with the function runner."""

    type_name = "AWS::Lambda::Function"
    honoured = frozenset(
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
            "DeadLetterConfig",
        }
    )
    noted: ClassVar[Mapping[str, str]] = {
        "Architectures": "workers run on this machine's architecture",
        "TracingConfig": "X-Ray is not emulated",
        "KmsKeyArn": "environment variables are not encrypted locally",
        "EphemeralStorage": "/tmp is the machine's",
        "VpcConfig": "no VPC locally",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        runtime = str(props.get("Runtime", ""))
        if not runtime.startswith("python3"):
            raise request.error(
                f"runtime {runtime!r}: only python3.x functions run locally", prop="Runtime"
            )
        code = code_dir(self, request, "Code", props["Code"])
        layers: list[Path] = []
        for layer in props.get("Layers") or []:
            if str(layer) not in self.ctx.layers:
                raise request.error(f"layer {layer} was not provisioned locally", prop="Layers")
            layers += self.ctx.layers[str(layer)]
        name = str(props.get("FunctionName") or generated_name(request.stack, request.logical_id))
        env = (props.get("Environment") or {}).get("Variables") or {}
        dead_letter = str((props.get("DeadLetterConfig") or {}).get("TargetArn") or "")
        if dead_letter and dead_letter.split(":")[2:3] not in (["sqs"], ["sns"]):
            raise request.error(
                "must be an SQS queue or an SNS topic", prop="DeadLetterConfig.TargetArn"
            )
        reserved = props.get("ReservedConcurrentExecutions")
        workers = self.ctx.limits.max_workers_per_function
        if reserved is not None:
            workers = max(1, min(workers, int(reserved)))
        await self.ctx.sink.register_function(
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
                role_arn=str(props.get("Role") or ""),
                dead_letter_arn=dead_letter,
            )
        )
        request.report.action = "emulated"
        request.report.note = "; ".join([f"runner: {code}", *notes])
        return Outputs(ref=name, attrs={"Arn": arn("lambda", f"function:{name}")})


@register
class EventSourceMappingProvider(ResourceProvider):
    """An SQS event source mapping, run by a local poller (never created in moto, which would
    consume the messages itself)."""

    type_name = "AWS::Lambda::EventSourceMapping"
    honoured = frozenset(
        {
            "EventSourceArn",
            "FunctionName",
            "BatchSize",
            "MaximumBatchingWindowInSeconds",
            "FunctionResponseTypes",
            "ScalingConfig",
            "Enabled",
        }
    )

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        limits = self.ctx.limits
        source = str(props["EventSourceArn"])
        if source.split(":")[2] != "sqs":
            raise request.error(
                "only SQS event sources are emulated locally", prop="EventSourceArn"
            )
        wanted = int((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 0) or 0)
        concurrency = min(wanted or limits.max_concurrency, limits.max_concurrency)
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
        sqs = self.ctx.clients("sqs")
        queue_url = (await sqs.get_queue_url(QueueName=source.split(":")[5]))["QueueUrl"]
        # CreateEventSourceMapping refuses a queue whose visibility timeout is shorter than the
        # function's timeout (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
        attributes = await sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"]
        )
        visibility = int(attributes["Attributes"]["VisibilityTimeout"])
        timeout = self.ctx.sink.function_timeout(config.function_name)
        if timeout is not None and visibility < timeout:
            raise request.error(
                f"InvalidParameterValueException: Queue visibility timeout: {visibility} "
                f"seconds is less than Function timeout: {timeout:g} seconds",
                prop="EventSourceArn",
            )
        try:
            await self.ctx.sink.register_mapping(config, queue_url)
        except AccessDeniedError as exc:
            # CreateEventSourceMapping's answer on AWS: the stack fails.
            action = exc.action.split(":", 1)[-1]
            raise request.error(
                f"the function's execution role does not have permissions to call {action} on "
                f"SQS ({exc})",
                prop="FunctionName",
            ) from exc
        request.report.action = "emulated"
        request.report.note = f"poller, {concurrency} concurrent batch(es)" + (
            f" (template asks {wanted}; local cap {limits.max_concurrency})"
            if wanted > concurrency
            else ""
        )
        ident = hashlib.sha256(f"{source}|{props['FunctionName']}".encode()).hexdigest()
        uuid = f"{ident[:8]}-{ident[8:12]}-{ident[12:16]}-{ident[16:20]}-{ident[20:32]}"
        return Outputs(ref=uuid, attrs={"EventSourceMappingArn": arn("lambda", f"esm:{uuid}")})


@register
class VersionProvider(ResourceProvider):
    """A published version: resolves to `$LATEST` locally."""

    type_name = "AWS::Lambda::Version"
    honoured = None

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        name = str(request.props["FunctionName"])
        request.report.action = "emulated"
        request.report.note = "versions resolve to $LATEST locally"
        version_arn = arn("lambda", f"function:{name}:1")
        return Outputs(ref=version_arn, attrs={"Version": "1", "FunctionArn": version_arn})


@register
class AliasProvider(ResourceProvider):
    """An alias: resolves to `$LATEST` locally."""

    type_name = "AWS::Lambda::Alias"
    honoured = None

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        name = str(request.props["FunctionName"]).split(":")[-1]
        request.report.action = "emulated"
        request.report.note = "aliases resolve to $LATEST locally"
        alias_arn = arn("lambda", f"function:{name}:{request.props['Name']}")
        return Outputs(ref=alias_arn, attrs={"AliasArn": alias_arn})


@register
class PermissionProvider(ResourceProvider):
    """A statement of the function's resource policy (who may invoke it, from which source)."""

    type_name = "AWS::Lambda::Permission"
    honoured = frozenset(
        {"Action", "FunctionName", "Principal", "SourceArn", "SourceAccount", "PrincipalOrgID"}
    )
    noted: ClassVar[Mapping[str, str]] = {
        "EventSourceToken": "Alexa skills are not emulated",
        "FunctionUrlAuthType": "function URLs are not emulated",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        function = str(props["FunctionName"])
        if function.startswith("arn:"):
            function_arn = ":".join(function.split(":")[:7])
        else:
            function_arn = arn("lambda", f"function:{function.split(':')[0]}")
        principal = str(props["Principal"])
        if principal == "*":
            who: Any = "*"
        elif principal.isdigit():
            who = {"AWS": f"arn:aws:iam::{principal}:root"}
        elif principal.startswith("arn:"):
            who = {"AWS": principal}
        else:
            who = {"Service": principal}
        condition: dict[str, dict[str, str]] = {}
        if props.get("SourceArn"):
            condition.setdefault("ArnLike", {})["aws:SourceArn"] = str(props["SourceArn"])
        if props.get("SourceAccount"):
            condition.setdefault("StringEquals", {})["aws:SourceAccount"] = str(
                props["SourceAccount"]
            )
        if props.get("PrincipalOrgID"):
            condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = str(
                props["PrincipalOrgID"]
            )
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": who,
            "Action": str(props["Action"]),
            "Resource": function_arn,
        }
        if condition:
            statement["Condition"] = condition
        sid = generated_name(request.stack, request.logical_id)
        self.ctx.policies.put_function_statement(function_arn, sid, statement)
        request.report.note = "; ".join([f"function policy of {function_arn}", *notes])
        return Outputs(ref=sid)


DESTINATION_SERVICES = {
    "sqs": "an SQS queue",
    "sns": "an SNS topic",
    "events": "an event bus",
    "lambda": "a function",
}
"""Destinations an asynchronous invocation's record can be sent to (Lambda's four)."""


@register
class EventInvokeConfigProvider(ResourceProvider):
    """A function's asynchronous-invocation settings: `MaximumRetryAttempts` (0-2),
    `MaximumEventAgeInSeconds` (60-21600) and on-success/on-failure destinations
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)."""

    type_name = "AWS::Lambda::EventInvokeConfig"
    honoured = frozenset(
        {
            "FunctionName",
            "Qualifier",
            "MaximumRetryAttempts",
            "MaximumEventAgeInSeconds",
            "DestinationConfig",
        }
    )

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        retries = int(props.get("MaximumRetryAttempts", 2))
        if not 0 <= retries <= 2:
            raise request.error("must be between 0 and 2", prop="MaximumRetryAttempts")
        age = int(props.get("MaximumEventAgeInSeconds", 21_600))
        if not 60 <= age <= 21_600:
            raise request.error("must be between 60 and 21600", prop="MaximumEventAgeInSeconds")
        destinations = props.get("DestinationConfig") or {}
        chosen: dict[str, str] = {}
        for key in ("OnSuccess", "OnFailure"):
            target = str((destinations.get(key) or {}).get("Destination") or "")
            if not target:
                continue
            parts = target.split(":")
            service = parts[2] if len(parts) > 5 else ""
            if service not in DESTINATION_SERVICES or (
                service == "events" and not parts[5].startswith("event-bus/")
            ):
                raise request.error(
                    f"{target!r}: a destination must be {', '.join(DESTINATION_SERVICES.values())}"
                    " (other destinations are not emulated locally)",
                    prop=f"DestinationConfig.{key}.Destination",
                )
            chosen[key] = target
        qualifier = str(props.get("Qualifier") or "$LATEST")
        function = str(props["FunctionName"])
        config = AsyncInvokeConfig(
            max_retries=retries,
            max_event_age_s=float(age),
            on_success=chosen.get("OnSuccess", ""),
            on_failure=chosen.get("OnFailure", ""),
        )
        try:
            await self.ctx.sink.register_invoke_config(function, config)
        except FunctionNotFound as exc:
            raise request.error(str(exc), prop="FunctionName") from exc
        request.report.action = "emulated"
        request.report.note = "; ".join(
            [
                f"retries {retries}, max age {age} s",
                *(f"{k} -> {v}" for k, v in chosen.items()),
                *([f"qualifier {qualifier} resolves to $LATEST"] if qualifier != "$LATEST" else []),
            ]
        )
        return Outputs(ref=f"{function}|{qualifier}")
