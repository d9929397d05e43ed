"""Policy checks over the deploy templates (translated to CloudFormation) and the ASL files.

Each check is a pure function returning a list of violations (empty = compliant), so a test can
assert both that the real templates comply and that a mutated copy is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tools.templates import FAKE_STAGE, ssm_value

Template = dict[str, Any]

# Actions whose APIs accept no resource ARN, so "*" is the only possible Resource (IAM's Service
# Authorization Reference lists no resource type for them): a grant on any other Resource
# allows nothing on AWS.
STAR_RESOURCE_ACTIONS: dict[str, str] = {
    "xray:PutTraceSegments": "X-Ray write API, no resource ARN",
    "xray:PutTelemetryRecords": "X-Ray write API, no resource ARN",
    "xray:GetSamplingRules": "X-Ray sampling API, no resource ARN",
    "xray:GetSamplingTargets": "X-Ray sampling API, no resource ARN",
    "logs:CreateLogDelivery": "Step Functions log delivery, no resource ARN",
    "logs:GetLogDelivery": "Step Functions log delivery, no resource ARN",
    "logs:UpdateLogDelivery": "Step Functions log delivery, no resource ARN",
    "logs:DeleteLogDelivery": "Step Functions log delivery, no resource ARN",
    "logs:ListLogDeliveries": "Step Functions log delivery, no resource ARN",
    "logs:PutResourcePolicy": "Step Functions log delivery, no resource ARN",
    "logs:DescribeResourcePolicies": "Step Functions log delivery, no resource ARN",
    "logs:DescribeLogGroups": "Step Functions log delivery, no resource ARN",
    "events:TestEventPattern": "EventBridge pattern test, no resource ARN",
    "events:ListRules": "EventBridge rule listing, no resource ARN",
}
READER_INPUT_TYPES = frozenset({"CSV", "JSON", "JSONL", "MANIFEST"})
MIN_MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
VISIBILITY_FACTOR = 6
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+(?:::[A-Za-z0-9_]+)?)\}")
# Our own resources' ARNs must come in through placeholders; service integrations
# (arn:aws:states:::lambda:invoke) carry no account and are fine.
HARD_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{12}:")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resources_of(cfn: Template, type_name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id, Properties) of every resource of one type."""
    for logical_id, resource in cfn.get("Resources", {}).items():
        if resource.get("Type") == type_name:
            yield logical_id, resource.get("Properties", {})


def _ref_target(value: Any) -> str | None:
    """The logical id a `Ref`/`GetAtt` points at, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def resolve(cfn: Template, value: Any, params: dict[str, Any]) -> Any:
    """Resolve `Ref` to a parameter and `Fn::FindInMap` to a literal; anything else as is.

    Args:
        cfn: the template (for Mappings).
        value: the value to resolve.
        params: parameter values.

    Returns:
        The resolved value.
    """
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in params:
        return params[value["Ref"]]
    if isinstance(value, dict) and "Fn::FindInMap" in value:
        name, key, attr = (resolve(cfn, part, params) for part in value["Fn::FindInMap"])
        return cfn["Mappings"][name][str(key)][attr]
    return value


def _policy_statements(props: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for policy in props.get("Policies", []):
        document = policy.get("PolicyDocument", {})
        for statement in _as_list(document.get("Statement", [])):
            yield str(policy.get("PolicyName", "?")), statement


def _resource_text(resource: Any) -> str | None:
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return None


def check_least_privilege(cfn: Template) -> list[str]:
    """No wildcard actions, no `*` resources beyond STAR_RESOURCE_ACTIONS (and those only on `*`:
    scoped, they grant nothing), no managed policies, no NotAction/NotResource, no account-wide
    ARNs, on every IAM role.

    Args:
        cfn: a translated template.

    Returns:
        Violations.
    """
    problems: list[str] = []
    for role_id, props in resources_of(cfn, "AWS::IAM::Role"):
        for arn in props.get("ManagedPolicyArns", []):
            problems.append(f"{role_id}: attaches managed policy {arn}")
        for policy_name, statement in _policy_statements(props):
            where = f"{role_id}/{policy_name}/{statement.get('Sid', '?')}"
            if statement.get("Effect") != "Allow":
                continue
            for key in ("NotAction", "NotResource"):
                if key in statement:
                    problems.append(f"{where}: uses {key}")
            actions = [str(a) for a in _as_list(statement.get("Action", []))]
            for action in actions:
                if action == "*" or action.endswith(":*") or "*" in action.split(":")[-1]:
                    problems.append(f"{where}: wildcard action {action}")
            for resource in _as_list(statement.get("Resource", [])):
                text = _resource_text(resource)
                if text != "*":
                    void = sorted(a for a in actions if a in STAR_RESOURCE_ACTIONS)
                    if void:
                        problems.append(
                            f"{where}: {', '.join(void)} granted on {text or repr(resource)}, which"
                            " allows nothing (no resource-level permissions: only '*' grants it)"
                        )
                if text == "*":
                    extra = sorted(a for a in actions if a not in STAR_RESOURCE_ACTIONS)
                    if extra:
                        problems.append(f"{where}: Resource '*' for {', '.join(extra)}")
                elif text is not None and (
                    text.endswith(":::*") or re.search(r":(\*|\$\{AWS::AccountId\}):\*$", text)
                ):
                    problems.append(f"{where}: account-wide resource {text}")
    return problems


def role_s3_grants(cfn: Template, role_id: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """(S3 action, resource ARN with parameters substituted) pairs a role is allowed.

    Args:
        cfn: a translated template.
        role_id: the role's logical id.
        params: parameter values (bucket names).

    Returns:
        The grants.
    """
    props = cfn["Resources"][role_id]["Properties"]
    grants: set[tuple[str, str]] = set()
    for _, statement in _policy_statements(props):
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement.get("Action", [])):
            if not str(action).startswith("s3:"):
                continue
            for resource in _as_list(statement.get("Resource", [])):
                text = _resource_text(resource) or repr(resource)
                text = text.replace("${AWS::Partition}", "aws")
                text = PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), text)
                grants.add((str(action), text))
    return grants


def _dead_letter_targets(cfn: Template) -> set[str]:
    targets: set[str] = set()
    for _, props in resources_of(cfn, "AWS::SQS::Queue"):
        ref = _ref_target(props.get("RedrivePolicy", {}).get("deadLetterTargetArn"))
        if ref:
            targets.add(ref)
    for _, props in resources_of(cfn, "AWS::Events::Rule"):
        for target in props.get("Targets", []):
            ref = _ref_target(target.get("DeadLetterConfig", {}).get("Arn"))
            if ref:
                targets.add(ref)
    for _, props in resources_of(cfn, "AWS::Scheduler::Schedule"):
        ref = _ref_target(props.get("Target", {}).get("DeadLetterConfig", {}).get("Arn"))
        if ref:
            targets.add(ref)
    return targets


def check_queues(cfn: Template) -> list[str]:
    """Every queue is encrypted; every queue that is not itself a DLQ has one with
    maxReceiveCount >= 5; every DLQ keeps messages 14 days.

    Args:
        cfn: a translated template.

    Returns:
        Violations.
    """
    problems: list[str] = []
    queues = dict(resources_of(cfn, "AWS::SQS::Queue"))
    dead_letter = _dead_letter_targets(cfn)
    for queue_id, props in queues.items():
        if props.get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in props:
            problems.append(f"{queue_id}: not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)")
        if queue_id in dead_letter:
            if props.get("MessageRetentionPeriod") != DLQ_RETENTION_SECONDS:
                problems.append(f"{queue_id}: DLQ retention is not 14 days")
            continue
        redrive = props.get("RedrivePolicy")
        if not redrive:
            problems.append(f"{queue_id}: no DLQ (RedrivePolicy)")
            continue
        if _ref_target(redrive.get("deadLetterTargetArn")) not in queues:
            problems.append(f"{queue_id}: DLQ is not a queue of this stack")
        if int(redrive.get("maxReceiveCount", 0)) < MIN_MAX_RECEIVE_COUNT:
            problems.append(f"{queue_id}: maxReceiveCount < {MIN_MAX_RECEIVE_COUNT}")
    return problems


def check_event_targets(cfn: Template) -> list[str]:
    """Every EventBridge rule target and scheduler target has a DLQ and a retry policy;
    every queue targeted by a rule accepts messages only from that rule.

    Args:
        cfn: a translated template.

    Returns:
        Violations.
    """
    problems: list[str] = []
    policies = list(resources_of(cfn, "AWS::SQS::QueuePolicy"))
    for rule_id, props in resources_of(cfn, "AWS::Events::Rule"):
        for target in props.get("Targets", []):
            where = f"{rule_id}/{target.get('Id', '?')}"
            if not target.get("DeadLetterConfig", {}).get("Arn"):
                problems.append(f"{where}: rule target without DeadLetterConfig")
            if not target.get("RetryPolicy"):
                problems.append(f"{where}: rule target without RetryPolicy")
            queue = _ref_target(target.get("Arn"))
            if queue is None or queue not in dict(resources_of(cfn, "AWS::SQS::Queue")):
                continue
            if not _queue_accepts_only(policies, queue, rule_id):
                problems.append(f"{where}: queue {queue} does not accept only this rule")
    for schedule_id, props in resources_of(cfn, "AWS::Scheduler::Schedule"):
        target = props.get("Target", {})
        if not target.get("DeadLetterConfig", {}).get("Arn"):
            problems.append(f"{schedule_id}: schedule target without DeadLetterConfig")
        if not target.get("RetryPolicy"):
            problems.append(f"{schedule_id}: schedule target without RetryPolicy")
    return problems


def _queue_accepts_only(
    policies: list[tuple[str, dict[str, Any]]], queue_id: str, rule_id: str
) -> bool:
    for _, props in policies:
        if queue_id not in {_ref_target(q) for q in props.get("Queues", [])}:
            continue
        statements = _as_list(props.get("PolicyDocument", {}).get("Statement", []))
        allows = [s for s in statements if s.get("Effect") == "Allow"]
        if not allows:
            continue
        return all(
            _ref_target(s.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn")) == rule_id
            for s in allows
        )
    return False


def check_sqs_triggers(cfn: Template) -> list[str]:
    """Every event source mapping reports partial batch failures and caps its concurrency.

    Args:
        cfn: a translated template.

    Returns:
        Violations.
    """
    problems: list[str] = []
    for esm_id, props in resources_of(cfn, "AWS::Lambda::EventSourceMapping"):
        if "ReportBatchItemFailures" not in props.get("FunctionResponseTypes", []):
            problems.append(f"{esm_id}: no ReportBatchItemFailures")
        if "MaximumConcurrency" not in props.get("ScalingConfig", {}):
            problems.append(f"{esm_id}: no ScalingConfig.MaximumConcurrency")
    return problems


def check_visibility_timeouts(cfn: Template, params: dict[str, Any]) -> list[str]:
    """Every queue feeding a function hides a message for at least 6x the function timeout.

    Args:
        cfn: a translated template.
        params: parameter values (timeouts).

    Returns:
        Violations.
    """
    problems: list[str] = []
    resources = cfn.get("Resources", {})
    for esm_id, props in resources_of(cfn, "AWS::Lambda::EventSourceMapping"):
        queue_id = _ref_target(props.get("EventSourceArn"))
        function_id = _ref_target(props.get("FunctionName"))
        if queue_id not in resources or function_id not in resources:
            problems.append(f"{esm_id}: queue or function not in this stack")
            continue
        queue = resources[queue_id]["Properties"]
        function = resources[function_id]["Properties"]
        timeout = int(resolve(cfn, function.get("Timeout", 3), params))
        visibility = int(resolve(cfn, queue.get("VisibilityTimeout", 30), params))
        if visibility < VISIBILITY_FACTOR * timeout:
            problems.append(
                f"{queue_id}: visibility timeout {visibility}s < {VISIBILITY_FACTOR} x "
                f"{function_id} timeout {timeout}s"
            )
    return problems


def check_buckets(cfn: Template) -> list[str]:
    """Every bucket is encrypted, versioned, blocks public access and denies non-TLS requests.

    Args:
        cfn: a translated template.

    Returns:
        Violations.
    """
    problems: list[str] = []
    policies = {
        _ref_target(props.get("Bucket")): props.get("PolicyDocument", {})
        for _, props in resources_of(cfn, "AWS::S3::BucketPolicy")
    }
    for bucket_id, props in resources_of(cfn, "AWS::S3::Bucket"):
        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        algorithms = {r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules}
        if not algorithms & {"aws:kms", "aws:kms:dsse", "AES256"}:
            problems.append(f"{bucket_id}: no default encryption")
        block = props.get("PublicAccessBlockConfiguration", {})
        for flag in (
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ):
            if block.get(flag) is not True:
                problems.append(f"{bucket_id}: public access block {flag} not true")
        if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            problems.append(f"{bucket_id}: versioning not enabled")
        if not _denies_insecure_transport(policies.get(bucket_id, {}), bucket_id):
            problems.append(f"{bucket_id}: no TLS-only policy (Deny aws:SecureTransport false)")
    return problems


def _denies_insecure_transport(document: dict[str, Any], bucket_id: str) -> bool:
    for statement in _as_list(document.get("Statement", [])):
        if statement.get("Effect") != "Deny" or statement.get("Principal") not in (
            "*",
            {"AWS": "*"},
        ):
            continue
        if "s3:*" not in _as_list(statement.get("Action", [])):
            continue
        secure = statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
        if str(secure).lower() != "false":
            continue
        covered = {_resource_text(r) or repr(r) for r in _as_list(statement.get("Resource", []))}
        bucket_arn = repr({"Fn::GetAtt": [bucket_id, "Arn"]})
        if bucket_arn in covered and f"${{{bucket_id}.Arn}}/*" in covered:
            return True
    return False


def check_functions(cfn: Template) -> list[str]:
    """Every function runs Python 3.12+ on arm64 with active tracing.

    Args:
        cfn: a translated template.

    Returns:
        Violations.
    """
    problems: list[str] = []
    for function_id, props in resources_of(cfn, "AWS::Lambda::Function"):
        if props.get("Architectures") != ["arm64"]:
            problems.append(f"{function_id}: not arm64")
        runtime = str(props.get("Runtime", ""))
        match = re.fullmatch(r"python3\.(\d+)", runtime)
        if match is None or int(match.group(1)) < 12:
            problems.append(f"{function_id}: runtime {runtime} is not python3.12+")
        if props.get("TracingConfig", {}).get("Mode") != "Active":
            problems.append(f"{function_id}: tracing not active")
    return problems


def iter_states(definition: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state of an ASL definition, nested Map/Parallel states included.

    Args:
        definition: an ASL document (or an ItemProcessor / branch).
        path: prefix for the yielded names.

    Yields:
        (path/name, state).
    """
    for name, state in definition.get("States", {}).items():
        here = f"{path}/{name}" if path else name
        yield here, state
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from iter_states(state[key], here)
        for index, branch in enumerate(state.get("Branches", [])):
            yield from iter_states(branch, f"{here}[{index}]")


def check_distributed_maps(definition: dict[str, Any]) -> list[str]:
    """Every Distributed Map sets an explicit tolerated failure, reads a supported input type
    and writes its results to S3.

    Args:
        definition: an ASL document.

    Returns:
        Violations.
    """
    problems: list[str] = []
    for name, state in iter_states(definition):
        if state.get("Type") != "Map":
            continue
        processor = state.get("ItemProcessor", {})
        if processor.get("ProcessorConfig", {}).get("Mode") != "DISTRIBUTED":
            continue
        tolerance = [
            state.get(key)
            for key in ("ToleratedFailurePercentage", "ToleratedFailureCount")
            if isinstance(state.get(key), int | float)
        ]
        if not tolerance:
            problems.append(f"{name}: no explicit ToleratedFailurePercentage/Count")
        reader = state.get("ItemReader")
        if reader is not None:
            input_type = reader.get("ReaderConfig", {}).get("InputType")
            if reader.get("Resource", "").endswith(":getObject") and (
                input_type not in READER_INPUT_TYPES
            ):
                problems.append(f"{name}: ItemReader InputType {input_type!r} not supported")
        if "ResultWriter" not in state:
            problems.append(f"{name}: no ResultWriter (results would go into the payload)")
    return problems


def check_placeholders(asl_text: str, substitutions: dict[str, Any]) -> list[str]:
    """Every `${Placeholder}` has a substitution, every substitution is used, no hard ARNs.

    Args:
        asl_text: the ASL file's text.
        substitutions: the state machine's DefinitionSubstitutions.

    Returns:
        Violations.
    """
    problems: list[str] = []
    used = set(PLACEHOLDER.findall(asl_text))
    for name in sorted(used - set(substitutions)):
        problems.append(f"placeholder ${{{name}}} has no DefinitionSubstitutions entry")
    for name in sorted(set(substitutions) - used):
        problems.append(f"substitution {name} is not used by the ASL file")
    for arn in sorted(set(HARD_ARN.findall(asl_text))):
        problems.append(f"hard-coded ARN {arn}… (use a placeholder)")
    return problems


def check_error_names(definition: dict[str, Any], known: set[str]) -> list[str]:
    """Every error matched by Retry/Catch is a Step Functions/Lambda error or a public Sluice error.

    Args:
        definition: an ASL document.
        known: the public error class names (sluice_shared.errors).

    Returns:
        Violations.
    """
    problems: list[str] = []
    for name, state in iter_states(definition):
        for clause in [*state.get("Retry", []), *state.get("Catch", [])]:
            for error in clause.get("ErrorEquals", []):
                if error.startswith(("States.", "Lambda.")) or error in known:
                    continue
                problems.append(f"{name}: matches unknown error {error}")
        for retry in state.get("Retry", []):
            if retry.get("JitterStrategy") != "FULL" or "MaxDelaySeconds" not in retry:
                problems.append(f"{name}: Retry without full jitter and a delay cap")
    return problems


RULE_PLATFORM_NAMES = {"RawBucketName": "raw-bucket-name"}
"""Placeholders of orchestration/rules/*.json that stand for a platform name: the templates
read them by a dynamic reference, `{{resolve:ssm:/sluice/${Stage}/<name>}}`."""


def placeholders_to_refs(node: Any) -> Any:
    """Turn `"${Name}"` strings in a rule pattern file into the template's form: a platform
    name (`RULE_PLATFORM_NAMES`) into the value its dynamic reference resolves to for
    `FAKE_STAGE` (as `load_template` resolves the template), anything else into
    `{"Ref": "Name"}`."""
    if isinstance(node, dict):
        return {key: placeholders_to_refs(value) for key, value in node.items()}
    if isinstance(node, list):
        return [placeholders_to_refs(item) for item in node]
    if isinstance(node, str):
        match = PLACEHOLDER.fullmatch(node)
        if match and match.group(1) in RULE_PLATFORM_NAMES:
            return ssm_value(f"/sluice/{FAKE_STAGE}/{RULE_PLATFORM_NAMES[match.group(1)]}")
        if match:
            return {"Ref": match.group(1)}
    return node


def check_rule_drift(template: Template, pattern_file: dict[str, Any]) -> list[str]:
    """The template's EventBridge rule pattern equals the one in orchestration/rules/.

    Args:
        template: the service template (SAM or translated; rules are plain CloudFormation).
        pattern_file: the parsed orchestration/rules/<svc>.json.

    Returns:
        Violations.
    """
    rules = list(resources_of(template, "AWS::Events::Rule"))
    if len(rules) != 1:
        return [f"expected exactly one rule, found {len(rules)}"]
    rule_id, props = rules[0]
    if props.get("EventPattern") != placeholders_to_refs(pattern_file):
        return [f"{rule_id}: EventPattern differs from orchestration/rules"]
    return []


def _function_metric_identity(cfn: Template) -> tuple[str, str] | None:
    """(namespace, service) the stack's one SQS-fed function emits EMF under, from its env."""
    for _, props in resources_of(cfn, "AWS::Lambda::Function"):
        env = props.get("Environment", {}).get("Variables", {})
        if "POWERTOOLS_SERVICE_NAME" in env:
            return (
                str(env.get("POWERTOOLS_METRICS_NAMESPACE", "Sluice")),
                str(env["POWERTOOLS_SERVICE_NAME"]),
            )
    return None


def check_poison_alarm(cfn: Template, metric: str = "FilesPoison") -> list[str]:
    """A service stack alarms on any `FilesPoison` (or `metric`, a count that should stay 0,
    such as `EventLedgerMismatch`) its function emits.

    The alarm must read the namespace and `service` dimension the function's Powertools
    environment writes (else it watches a metric that never exists), sum over the period,
    fire above 0, treat missing data as fine and notify the alarm topic.

    Args:
        cfn: a translated service template.
        metric: the EMF metric the alarm must watch.

    Returns:
        Violations.
    """
    identity = _function_metric_identity(cfn)
    if identity is None:
        return ["no function with POWERTOOLS_SERVICE_NAME"]
    namespace, service = identity
    want_dimensions = [{"Name": "service", "Value": service}]
    candidates = [
        (alarm_id, props)
        for alarm_id, props in resources_of(cfn, "AWS::CloudWatch::Alarm")
        if props.get("MetricName") == metric
    ]
    if not candidates:
        return [f"no {metric} alarm"]
    problems: list[str] = []
    for alarm_id, props in candidates:
        if props.get("Namespace") != namespace:
            problems.append(f"{alarm_id}: namespace {props.get('Namespace')} != {namespace}")
        if props.get("Dimensions") != want_dimensions:
            problems.append(f"{alarm_id}: dimensions are not service={service}")
        if props.get("Statistic") != "Sum":
            problems.append(f"{alarm_id}: statistic is not Sum")
        if props.get("Threshold") != 0 or props.get("ComparisonOperator") != "GreaterThanThreshold":
            problems.append(f"{alarm_id}: does not fire on {metric} > 0")
        if props.get("TreatMissingData") != "notBreaching":
            problems.append(f"{alarm_id}: missing data not notBreaching")
        if "AlarmActions" not in props:
            problems.append(f"{alarm_id}: no AlarmActions")
    return problems


# ---------------------------------------------------------------- rules, bus policy


def check_rules_pin_account(cfn: Template) -> list[str]:
    """Every EventBridge rule with an event pattern matches only events of its own account.

    Args:
        cfn: a translated template.

    Returns:
        Violations.
    """
    problems: list[str] = []
    for rule_id, props in resources_of(cfn, "AWS::Events::Rule"):
        pattern = props.get("EventPattern")
        if pattern is None:
            continue  # a scheduled rule
        if pattern.get("account") != [{"Ref": "AWS::AccountId"}]:
            problems.append(f"{rule_id}: EventPattern does not pin account to AWS::AccountId")
    return problems


def resolve_intrinsics(value: Any, values: dict[str, Any]) -> Any:
    """Resolve the intrinsics a platform policy uses (`Ref`, `Fn::Sub`, `Fn::Join`, `Fn::Split`,
    `Fn::GetAtt` of a name in `values` as `"Logical.Attr"`) to literals.

    Args:
        value: any template value.
        values: parameter and pseudo-parameter values (lists for CommaDelimitedList) and
            `"Logical.Attr"` attribute values.

    Returns:
        The literal value.

    Raises:
        ValueError: an intrinsic or a name this resolver does not know (never a silent pass).
    """
    if isinstance(value, list):
        return [resolve_intrinsics(item, values) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
        return {key: resolve_intrinsics(item, values) for key, item in value.items()}
    ((name, arg),) = value.items()
    if name == "Ref":
        if arg not in values:
            raise ValueError(f"cannot resolve Ref {arg}")
        return values[arg]
    if name == "Fn::GetAtt":
        attr = ".".join(arg) if isinstance(arg, list) else str(arg)
        if attr not in values:
            raise ValueError(f"cannot resolve GetAtt {attr}")
        return values[attr]
    if name == "Fn::Join":
        sep, items = arg
        return str(sep).join(str(i) for i in _flatten(resolve_intrinsics(items, values)))
    if name == "Fn::Split":
        sep, text = arg
        return str(resolve_intrinsics(text, values)).split(sep)
    if name == "Fn::Sub":
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        scope = {**values, **{k: resolve_intrinsics(v, values) for k, v in local.items()}}

        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in scope:
                raise ValueError(f"cannot resolve ${{{key}}} in Fn::Sub")
            return str(scope[key])

        return re.sub(r"\$\{([A-Za-z0-9_:.]+)\}", sub, text)
    raise ValueError(f"intrinsic {name} not supported")


def _flatten(items: Any) -> list[Any]:
    flat: list[Any] = []
    for item in _as_list(items):
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _condition_holds(cfn: Template, name: str, values: dict[str, Any]) -> bool:
    def evaluate(node: Any) -> bool:
        if isinstance(node, dict) and "Condition" in node:
            return evaluate(cfn["Conditions"][node["Condition"]])
        if isinstance(node, dict) and "Fn::Not" in node:
            return not evaluate(node["Fn::Not"][0])
        if isinstance(node, dict) and "Fn::Equals" in node:
            left, right = (resolve_intrinsics(side, values) for side in node["Fn::Equals"])
            return bool(left == right)
        raise ValueError(f"condition {node!r} not supported")

    return evaluate(cfn["Conditions"][name])


def bus_policy_statements(platform: Template, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of the custom bus's policy as deployed with `values`, literals only.

    Args:
        platform: the translated platform template.
        values: parameter values (CommaDelimitedList as lists) and pseudo parameters;
            `EventBus.Arn` is added from the bus name.

    Returns:
        The statements of every `AWS::Events::EventBusPolicy` whose condition holds.
    """
    values = {
        **values,
        "EventBus": f"sluice-{values['Stage']}",
        "EventBus.Arn": (
            f"arn:{values['AWS::Partition']}:events:{values['AWS::Region']}:"
            f"{values['AWS::AccountId']}:event-bus/sluice-{values['Stage']}"
        ),
    }
    statements = []
    for logical_id, resource in platform["Resources"].items():
        if resource.get("Type") != "AWS::Events::EventBusPolicy":
            continue
        condition = resource.get("Condition")
        if condition and not _condition_holds(platform, condition, values):
            continue
        statement = resolve_intrinsics(resource["Properties"]["Statement"], values)
        statements.append({"Sid": logical_id, **statement})
    return statements


def _arn_like(pattern: str, value: str) -> bool:
    # ArnLike/StringLike: * and ? wildcards, case-sensitive, anchored.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


_POSITIVE_OPERATORS = {
    "StringEquals": lambda pattern, value: pattern == value,
    "StringLike": _arn_like,
    "ArnEquals": lambda pattern, value: pattern == value,
    "ArnLike": _arn_like,
}


def _conditions_match(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        negated = "Not" in operator
        base = operator.replace("Not", "")
        if base not in _POSITIVE_OPERATORS:
            raise ValueError(f"condition operator {operator} not supported")
        compare = _POSITIVE_OPERATORS[base]
        for key, patterns in tests.items():
            value = context.get(key)
            matched = value is not None and any(compare(str(p), value) for p in _as_list(patterns))
            # A negated operator holds when the key is absent or matches none of the values.
            if matched == negated:
                return False
    return True


def _principal_matches(principal: Any, principal_arn: str, account: str) -> bool:
    if principal == "*":
        return True
    for entry in _as_list(principal.get("AWS", []) if isinstance(principal, dict) else []):
        entry = str(entry)
        if entry in ("*", principal_arn, account, f"arn:aws:iam::{account}:root"):
            return True
    return False


def bus_put_decision(
    statements: list[dict[str, Any]],
    *,
    principal_arn: str,
    account: str,
    home_account: str,
    source: str,
) -> str:
    """Whether the bus accepts a PutEvents entry of `source` from a principal.

    AWS's evaluation for one request: an explicit Deny of the resource policy wins; a principal
    of the bus's own account is then allowed by its identity policy (the Sluice roles and the
    account's users hold events:PutEvents on the bus); another account needs an Allow here.

    Args:
        statements: `bus_policy_statements`.
        principal_arn: the caller's `aws:PrincipalArn` (a role ARN, or `...:root`).
        account: the caller's account.
        home_account: the bus's account.
        source: the entry's `Source` (`events:source`).

    Returns:
        `denied` (an explicit Deny, naming nothing), `allowed`, or `not-allowed` (no Allow for
        another account).
    """
    context = {"events:source": source, "aws:PrincipalArn": principal_arn}
    allowed = account == home_account
    for statement in statements:
        if "events:PutEvents" not in _as_list(statement.get("Action", [])):
            continue
        if not _principal_matches(statement.get("Principal"), principal_arn, account):
            continue
        if not _conditions_match(statement.get("Condition", {}), context):
            continue
        if statement.get("Effect") == "Deny":
            return "denied"
        allowed = True
    return "allowed" if allowed else "not-allowed"


# ---------------------------------------------------------------- capacity and retention


def check_reserved_concurrency(cfn: Template, params: dict[str, Any]) -> list[str]:
    """Every function fed by an SQS mapping reserves at least the mapping's MaximumConcurrency,
    or says why not in its Metadata (`SluiceReservedConcurrency`); below it, the poller meets
    throttles and healthy messages move towards the DLQ.

    Args:
        cfn: a translated template.
        params: parameter values.

    Returns:
        Violations.
    """
    problems: list[str] = []
    resources = cfn.get("Resources", {})
    for esm_id, props in resources_of(cfn, "AWS::Lambda::EventSourceMapping"):
        function_id = _ref_target(props.get("FunctionName"))
        if function_id not in resources:
            problems.append(f"{esm_id}: function not in this stack")
            continue
        function = resources[function_id]
        if function.get("Metadata", {}).get("SluiceReservedConcurrency"):
            continue  # a written reason
        maximum = resolve(cfn, props.get("ScalingConfig", {}).get("MaximumConcurrency"), params)
        reserved = resolve(
            cfn, function.get("Properties", {}).get("ReservedConcurrentExecutions"), params
        )
        if reserved is None or maximum is None or int(reserved) < int(maximum):
            problems.append(
                f"{function_id}: reserved concurrency {reserved} < {esm_id} "
                f"MaximumConcurrency {maximum}"
            )
    return problems


def rule_max_event_age(cfn: Template) -> int:
    """The longest time (s) any rule target of the stack lets EventBridge retry an event."""
    ages = [
        int(target.get("RetryPolicy", {}).get("MaximumEventAgeInSeconds", 86400))
        for _, props in resources_of(cfn, "AWS::Events::Rule")
        for target in props.get("Targets", [])
    ]
    return max(ages, default=0)


def check_dlq_within_work_retention(
    service: Template, work_retention_days: int, min_work_retention_days: int
) -> list[str]:
    """A parked message never outlives the staged data it names: every DLQ of a service stack
    keeps messages (from their first enqueue), plus the rules' maximum event age, at most as
    long as the work bucket keeps objects, for the default and the lowest allowed retention.

    Args:
        service: a translated service template.
        work_retention_days: the platform's WorkRetentionDays default.
        min_work_retention_days: its MinValue (the shortest a deployment may choose).

    Returns:
        Violations.
    """
    problems: list[str] = []
    dead_letter = _dead_letter_targets(service)
    age = rule_max_event_age(service)
    for queue_id, props in resources_of(service, "AWS::SQS::Queue"):
        if queue_id not in dead_letter:
            continue
        lifetime = int(props.get("MessageRetentionPeriod", 345600)) + age
        for label, days in (
            ("default", work_retention_days),
            ("MinValue", min_work_retention_days),
        ):
            if lifetime > days * 86400:
                problems.append(
                    f"{queue_id}: a parked message lives {lifetime / 86400:g} days, the work "
                    f"bucket keeps data {days} days (WorkRetentionDays {label})"
                )
    return problems


def ephemeral_mib(cfn: Template, function_id: str) -> int:
    """The function's EphemeralStorage in MiB (Lambda's default 512 when unset)."""
    props = cfn["Resources"][function_id]["Properties"]
    return int(props.get("EphemeralStorage", {}).get("Size", 512))


def check_scratch_space(
    validate_mib: int, threshold_max: int, max_decompression_ratio: float
) -> list[str]:
    """The largest real-time file fits validate's /tmp once gunzipped: validate keeps the stored
    object plus what it stages from the expanded rows (at most the expanded bytes), so
    threshold x (1 + ratio) must fit the function's ephemeral storage.

    Args:
        validate_mib: validate's EphemeralStorage (MiB).
        threshold_max: the largest BatchThresholdBytes a deployment may choose (MaxValue).
        max_decompression_ratio: the decompression-ratio limit validate runs with.

    Returns:
        Violations.
    """
    need = threshold_max * (1 + max_decompression_ratio)
    have = validate_mib * 2**20
    if need > have:
        return [
            f"a real-time file of {threshold_max} bytes may need {need:.0f} bytes of /tmp "
            f"(x{max_decompression_ratio:g} gunzipped + the object), validate has {have}"
        ]
    return []
