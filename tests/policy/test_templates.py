"""The deploy templates and the batch ASL comply with the policy checks, and every check reports
its property when a copy of the template is broken on purpose."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import sluice_shared.errors as sluice_errors
from tests.policy import checks
from tools.templates import (
    FAKE_STAGE,
    SERVICES,
    load_template,
    render_asl,
    ssm_value,
    template_paths,
)

RAW_BUCKET = ssm_value(f"/sluice/{FAKE_STAGE}/raw-bucket-name")
WORK_BUCKET = ssm_value(f"/sluice/{FAKE_STAGE}/work-bucket-name")

REPO = Path(__file__).resolve().parents[2]
GEN_SCHEMAS = REPO / "deploy" / "gen_schemas.py"
ALL = list(template_paths())
ACCT = "123456789012-us-east-1"


# What each function may do in S3: (action, resource). The spec of "only its buckets/prefixes".
def _arns(bucket: str, path: str, *actions: str) -> set[tuple[str, str]]:
    resource = f"arn:aws:s3:::sluice-dev-{bucket}-{ACCT}{path}"
    return {(action, resource) for action in actions}


READ_RAW = _arns("raw", "/*", "s3:GetObject", "s3:GetObjectVersion")
# s3:ListBucket on the raw bucket makes S3 answer 404, not 403, for a key or version that is gone.
LIST_RAW = _arns("raw", "", "s3:ListBucket")
LIST_WORK = _arns("work", "", "s3:ListBucket")
WRITE = ("s3:PutObject", "s3:AbortMultipartUpload")
# The stages (and the batch steps) stage per attempt and never delete staging.
PUT_STAGE = _arns("work", "/stage/*", *WRITE)
READ_STAGE = _arns("work", "/stage/*", "s3:GetObject")
QUARANTINE = _arns("error", "/quarantine/*", *WRITE)
PROCESSED = _arns("processed", "/*", *WRITE)
# Every role that loads data contracts reads the published ones (sluice_shared.published_contracts).
CONTRACTS = _arns("processed", "/_contracts/*", "s3:GetObject")
EXPECTED_S3: dict[tuple[str, str], set[tuple[str, str]]] = {
    ("ingest", "FunctionRole"): CONTRACTS | READ_RAW | LIST_RAW,
    ("validate", "FunctionRole"): CONTRACTS | READ_RAW | LIST_RAW | PUT_STAGE | QUARANTINE,
    ("transform", "FunctionRole"): CONTRACTS | LIST_WORK | READ_STAGE | PUT_STAGE | QUARANTINE,
    # Output re-reads a completed file's manifest to re-publish file.processed (_replay_completed).
    ("output", "FunctionRole"): (
        CONTRACTS
        | LIST_WORK
        | READ_STAGE
        | PROCESSED
        | _arns("processed", "/_manifests/*", "s3:GetObject")
    ),
    ("orchestration", "PlanRole"): (
        CONTRACTS | READ_RAW | LIST_RAW | _arns("work", "/batch/*", "s3:PutObject")
    ),
    ("orchestration", "RunPartitionRole"): (
        CONTRACTS | READ_RAW | LIST_RAW | LIST_WORK | PUT_STAGE | QUARANTINE
    ),
    ("orchestration", "RunBucketRole"): (
        CONTRACTS | LIST_WORK | READ_STAGE | PUT_STAGE | QUARANTINE | PROCESSED
    ),
    ("orchestration", "ReconcileRole"): (
        CONTRACTS
        | _arns("work", "/batch/*", "s3:GetObject")
        | _arns("processed", "/_manifests/*", "s3:GetObject", "s3:PutObject")
    ),
    ("orchestration", "StateMachineRole"): (
        _arns("work", "/batch/*", "s3:GetObject")
        | _arns(
            "work",
            "/batch/results/*",
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListMultipartUploadParts",
            "s3:AbortMultipartUpload",
        )
    ),
}


def _statements(cfn: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = cfn["Resources"][role_id]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]
    return statements


# ---------------------------------------------------------------- the real templates comply


@pytest.mark.parametrize("name", ALL)
def test_templates_least_privilege_holds(name: str, translated: dict[str, Any]) -> None:
    assert checks.check_least_privilege(translated[name]) == []


@pytest.mark.parametrize("name", ALL)
def test_templates_queues_encrypted_with_dlq(name: str, translated: dict[str, Any]) -> None:
    assert checks.check_queues(translated[name]) == []


@pytest.mark.parametrize("name", ALL)
def test_templates_event_targets_have_dlq_retry_and_scoped_queue_policy(
    name: str, translated: dict[str, Any]
) -> None:
    assert checks.check_event_targets(translated[name]) == []


@pytest.mark.parametrize("name", ALL)
def test_templates_sqs_triggers_report_batch_item_failures(
    name: str, translated: dict[str, Any]
) -> None:
    assert checks.check_sqs_triggers(translated[name]) == []


@pytest.mark.parametrize("name", ALL)
def test_templates_visibility_timeout_at_least_six_times_timeout(
    name: str, translated: dict[str, Any], params: dict[str, Any]
) -> None:
    assert checks.check_visibility_timeouts(translated[name], params[name]) == []


@pytest.mark.parametrize("name", ALL)
def test_templates_buckets_encrypted_versioned_private_tls_only(
    name: str, translated: dict[str, Any]
) -> None:
    assert checks.check_buckets(translated[name]) == []


@pytest.mark.parametrize("name", ALL)
def test_templates_functions_arm64_python312_traced(name: str, translated: dict[str, Any]) -> None:
    assert checks.check_functions(translated[name]) == []


def test_templates_cover_every_resource_kind_checked(translated: dict[str, Any]) -> None:
    # Guards the checks above against passing vacuously on an empty or renamed template.
    kinds = {
        resource["Type"] for cfn in translated.values() for resource in cfn["Resources"].values()
    }
    assert {
        "AWS::IAM::Role",
        "AWS::SQS::Queue",
        "AWS::Events::Rule",
        "AWS::Lambda::EventSourceMapping",
        "AWS::S3::Bucket",
        "AWS::Lambda::Function",
        "AWS::Scheduler::Schedule",
        "AWS::StepFunctions::StateMachine",
    } <= kinds
    assert sum(1 for _ in checks.resources_of(translated["platform"], "AWS::S3::Bucket")) == 5


@pytest.mark.parametrize(("name", "role_id"), sorted(EXPECTED_S3))
def test_service_role_s3_only_its_buckets_and_prefixes(
    name: str, role_id: str, translated: dict[str, Any], params: dict[str, Any]
) -> None:
    grants = checks.role_s3_grants(translated[name], role_id, params[name])
    assert grants == EXPECTED_S3[(name, role_id)]
    # Listing the work bucket is limited to the staged prefix.
    for statement in _statements(translated[name], role_id):
        if statement.get("Action") == "s3:ListBucket" and WORK_BUCKET in str(statement):
            assert statement["Condition"] == {"StringLike": {"s3:prefix": "stage/*"}}


@pytest.mark.parametrize("svc", SERVICES)
def test_service_stack_alarms_on_poison_files(svc: str, translated: dict[str, Any]) -> None:
    assert checks.check_poison_alarm(translated[svc]) == []


@pytest.mark.parametrize("svc", ["validate", "transform", "output"])
def test_stage_stack_alarms_on_refused_events(svc: str, translated: dict[str, Any]) -> None:
    # The stages refuse events that disagree with the ledger (ingest registers, it has none).
    assert checks.check_poison_alarm(translated[svc], metric="EventLedgerMismatch") == []
    del translated[svc]["Resources"]["EventLedgerMismatchAlarm"]
    assert checks.check_poison_alarm(translated[svc], metric="EventLedgerMismatch") == [
        "no EventLedgerMismatch alarm"
    ]


@pytest.mark.parametrize("svc", SERVICES)
def test_service_rule_matches_orchestration_rules_file(svc: str, rules_dir: Path) -> None:
    template = load_template(template_paths()[svc])
    pattern = json.loads((rules_dir / f"{svc}.json").read_text("utf-8"))
    assert checks.check_rule_drift(template, pattern) == []


def test_ingest_rule_on_default_bus_others_on_custom_bus() -> None:
    for svc in SERVICES:
        template = load_template(template_paths()[svc])
        ((_, rule),) = checks.resources_of(template, "AWS::Events::Rule")
        bus = ssm_value(f"/sluice/{FAKE_STAGE}/event-bus-name")
        expected = "default" if svc == "ingest" else bus
        assert rule["EventBusName"] == expected, svc


def test_batch_asl_distributed_maps_explicit_tolerance(batch_definition: dict[str, Any]) -> None:
    names = [n for n, s in checks.iter_states(batch_definition) if s.get("Type") == "Map"]
    assert "Validate Partitions" in names
    assert "Transform And Write Buckets" in names
    assert checks.check_distributed_maps(batch_definition) == []


def test_batch_asl_every_placeholder_substituted(batch_asl: tuple[str, dict[str, Any]]) -> None:
    text, substitutions = batch_asl
    assert checks.check_placeholders(text, substitutions) == []
    rendered = render_asl(text, {k: f"value-{k}" for k in substitutions})
    assert "${" not in rendered


def test_batch_asl_errors_are_public_sluice_or_aws_errors(batch_definition: dict[str, Any]) -> None:
    known = {
        name
        for name, value in vars(sluice_errors).items()
        if isinstance(value, type) and issubclass(value, sluice_errors.SluiceError)
    }
    assert checks.check_error_names(batch_definition, known) == []


def test_batch_asl_every_state_has_comment(batch_definition: dict[str, Any]) -> None:
    missing = [n for n, s in checks.iter_states(batch_definition) if not s.get("Comment")]
    assert missing == []


def test_platform_schema_section_matches_contracts() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "gen_schemas.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_schema_registry_holds_the_detail_every_consumer_receives() -> None:
    # GIVEN the registry's schemas as deployed (draft 4, from the platform template)
    import jsonschema

    from contracts.events import BUILTIN_MODELS
    from contracts.tools import ContractFolder

    platform = load_template(REPO / "deploy" / "platform.yaml")
    schemas = {
        props["SchemaName"]: json.loads(props["Content"])
        for _, props in checks.resources_of(platform, "AWS::EventSchemas::Schema")
    }
    assert set(schemas) == {model.TYPE for model in BUILTIN_MODELS}
    for model in BUILTIN_MODELS:
        validator = jsonschema.Draft4Validator(schemas[model.TYPE])
        for example in ContractFolder.of(model).example_files():
            envelope = json.loads(example.read_text("utf-8"))
            # THEN each golden example, a whole envelope as it arrives in `detail`, validates
            assert list(validator.iter_errors(envelope)) == [], (model.TYPE, example.name)
            # and the payload alone does not: the schema is the envelope, not only its data
            assert not validator.is_valid(envelope["data"]), (model.TYPE, example.name)
            # and the envelope of another type does not: the type is pinned
            assert not validator.is_valid({**envelope, "type": "sluice.other.fact.v1"})


# ---------------------------------------------------------------- each check catches its breach


def test_least_privilege_wildcard_action_reported(translated: dict[str, Any]) -> None:
    cfn = translated["validate"]
    _statements(cfn, "FunctionRole").append(
        {"Sid": "Oops", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::x/*"}
    )
    assert any("wildcard action s3:*" in p for p in checks.check_least_privilege(cfn))


def test_least_privilege_star_resource_reported(translated: dict[str, Any]) -> None:
    cfn = translated["output"]
    _statements(cfn, "FunctionRole").append(
        {"Sid": "Oops", "Effect": "Allow", "Action": "dynamodb:Query", "Resource": "*"}
    )
    assert any("Resource '*' for dynamodb:Query" in p for p in checks.check_least_privilege(cfn))


def test_least_privilege_scoped_grant_of_an_action_without_resources_reported(
    translated: dict[str, Any],
) -> None:
    # events:ListRules has no resource-level permissions: scoped to a bus's rules, the grant
    # allows nothing on AWS (the function would be denied and fall back to staging every file)
    cfn = translated["validate"]
    (statement,) = [s for s in _statements(cfn, "FunctionRole") if s.get("Sid") == "ListBusRules"]
    statement["Resource"] = "arn:aws:events:us-east-1:123456789012:rule/sluice-bus/*"
    problems = checks.check_least_privilege(cfn)
    assert any("events:ListRules granted on arn:aws:events" in p for p in problems), problems


def test_least_privilege_managed_policy_reported(translated: dict[str, Any]) -> None:
    cfn = translated["ingest"]
    cfn["Resources"]["FunctionRole"]["Properties"]["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
    ]
    assert any("managed policy" in p for p in checks.check_least_privilege(cfn))


def test_s3_grants_extra_prefix_detected(
    translated: dict[str, Any], params: dict[str, Any]
) -> None:
    cfn = translated["ingest"]
    _statements(cfn, "FunctionRole").append(
        {
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{RAW_BUCKET}/*"},
        }
    )
    grants = checks.role_s3_grants(cfn, "FunctionRole", params["ingest"])
    assert grants != EXPECTED_S3[("ingest", "FunctionRole")]


def test_queues_missing_dlq_reported(translated: dict[str, Any]) -> None:
    cfn = translated["transform"]
    del cfn["Resources"]["Queue"]["Properties"]["RedrivePolicy"]
    assert "Queue: no DLQ (RedrivePolicy)" in checks.check_queues(cfn)


def test_queues_low_max_receive_count_reported(translated: dict[str, Any]) -> None:
    cfn = translated["validate"]
    cfn["Resources"]["Queue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = 1
    assert "Queue: maxReceiveCount < 5" in checks.check_queues(cfn)


def test_queues_unencrypted_reported(translated: dict[str, Any]) -> None:
    cfn = translated["output"]
    del cfn["Resources"]["DeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"]
    assert any(p.startswith("DeadLetterQueue: not encrypted") for p in checks.check_queues(cfn))


def test_event_targets_missing_dlq_reported(translated: dict[str, Any]) -> None:
    cfn = translated["ingest"]
    del cfn["Resources"]["Rule"]["Properties"]["Targets"][0]["DeadLetterConfig"]
    assert any("without DeadLetterConfig" in p for p in checks.check_event_targets(cfn))


def test_event_targets_open_queue_policy_reported(translated: dict[str, Any]) -> None:
    cfn = translated["validate"]
    statement = cfn["Resources"]["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    del statement["Condition"]
    assert any("does not accept only this rule" in p for p in checks.check_event_targets(cfn))


def test_event_targets_schedule_without_dlq_reported(translated: dict[str, Any]) -> None:
    cfn = translated["orchestration"]
    schedule = next(iter(checks.resources_of(cfn, "AWS::Scheduler::Schedule")))[1]
    del schedule["Target"]["DeadLetterConfig"]
    assert any(
        "schedule target without DeadLetterConfig" in p for p in checks.check_event_targets(cfn)
    )


def test_sqs_triggers_without_report_batch_item_failures_reported(
    translated: dict[str, Any],
) -> None:
    cfn = translated["transform"]
    (esm_id, props), *_ = checks.resources_of(cfn, "AWS::Lambda::EventSourceMapping")
    props["FunctionResponseTypes"] = []
    assert f"{esm_id}: no ReportBatchItemFailures" in checks.check_sqs_triggers(cfn)


def test_sqs_triggers_without_maximum_concurrency_reported(translated: dict[str, Any]) -> None:
    cfn = translated["ingest"]
    (esm_id, props), *_ = checks.resources_of(cfn, "AWS::Lambda::EventSourceMapping")
    del props["ScalingConfig"]
    assert f"{esm_id}: no ScalingConfig.MaximumConcurrency" in checks.check_sqs_triggers(cfn)


def test_visibility_timeout_too_short_reported(
    translated: dict[str, Any], params: dict[str, Any]
) -> None:
    cfn = translated["validate"]
    cfn["Resources"]["Queue"]["Properties"]["VisibilityTimeout"] = 300
    problems = checks.check_visibility_timeouts(cfn, params["validate"])
    assert problems == ["Queue: visibility timeout 300s < 6 x Function timeout 120s"]


@pytest.mark.parametrize("timeout", [30, 60, 120, 180, 300, 600, 900])
def test_visibility_timeout_every_allowed_timeout_holds(
    timeout: int, translated: dict[str, Any], params: dict[str, Any]
) -> None:
    for svc in SERVICES:
        allowed = translated[svc]["Parameters"]["FunctionTimeout"]["AllowedValues"]
        assert timeout in allowed
        values = {**params[svc], "FunctionTimeout": timeout}
        assert checks.check_visibility_timeouts(translated[svc], values) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        ("encryption", "RawBucket: no default encryption"),
        ("public", "RawBucket: public access block BlockPublicPolicy not true"),
        ("versioning", "RawBucket: versioning not enabled"),
        ("tls", "RawBucket: no TLS-only policy (Deny aws:SecureTransport false)"),
    ],
)
def test_buckets_broken_property_reported(
    mutation: str, expected: str, translated: dict[str, Any]
) -> None:
    cfn = translated["platform"]
    bucket = cfn["Resources"]["RawBucket"]["Properties"]
    if mutation == "encryption":
        del bucket["BucketEncryption"]
    elif mutation == "public":
        bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] = False
    elif mutation == "versioning":
        bucket["VersioningConfiguration"]["Status"] = "Suspended"
    else:
        del cfn["Resources"]["RawBucketPolicy"]
    assert expected in checks.check_buckets(cfn)


def test_functions_x86_reported(translated: dict[str, Any]) -> None:
    cfn = translated["output"]
    cfn["Resources"]["Function"]["Properties"]["Architectures"] = ["x86_64"]
    assert "Function: not arm64" in checks.check_functions(cfn)


@pytest.mark.parametrize("svc", SERVICES)
def test_poison_alarm_missing_reported(svc: str, translated: dict[str, Any]) -> None:
    cfn = translated[svc]
    del cfn["Resources"]["PoisonFilesAlarm"]
    assert checks.check_poison_alarm(cfn) == ["no FilesPoison alarm"]


def test_poison_alarm_wrong_service_dimension_reported(translated: dict[str, Any]) -> None:
    cfn = translated["transform"]
    cfn["Resources"]["PoisonFilesAlarm"]["Properties"]["Dimensions"][0]["Value"] = "validate"
    assert checks.check_poison_alarm(cfn) == [
        "PoisonFilesAlarm: dimensions are not service=transform"
    ]


def test_poison_alarm_average_statistic_reported(translated: dict[str, Any]) -> None:
    cfn = translated["output"]
    cfn["Resources"]["PoisonFilesAlarm"]["Properties"]["Statistic"] = "Average"
    assert checks.check_poison_alarm(cfn) == ["PoisonFilesAlarm: statistic is not Sum"]


def test_distributed_map_without_tolerance_reported(batch_definition: dict[str, Any]) -> None:
    del batch_definition["States"]["Validate Partitions"]["ToleratedFailurePercentage"]
    assert checks.check_distributed_maps(batch_definition) == [
        "Validate Partitions: no explicit ToleratedFailurePercentage/Count"
    ]


def test_distributed_map_unsupported_input_type_reported(batch_definition: dict[str, Any]) -> None:
    reader = batch_definition["States"]["Transform And Write Buckets"]["ItemReader"]
    reader["ReaderConfig"]["InputType"] = "PARQUETISH"
    assert any(
        "InputType 'PARQUETISH'" in p for p in checks.check_distributed_maps(batch_definition)
    )


def test_placeholders_unsubstituted_reported(batch_asl: tuple[str, dict[str, Any]]) -> None:
    text, substitutions = batch_asl
    broken = dict(substitutions)
    del broken["RunBucketFunctionArn"]
    assert checks.check_placeholders(text, broken) == [
        "placeholder ${RunBucketFunctionArn} has no DefinitionSubstitutions entry"
    ]


def test_placeholders_hard_coded_arn_reported(batch_asl: tuple[str, dict[str, Any]]) -> None:
    text, substitutions = batch_asl
    text = text.replace(
        "${PlanFunctionArn}", "arn:aws:lambda:us-east-1:123456789012:function:plan", 1
    )
    problems = checks.check_placeholders(text, substitutions)
    assert any(p.startswith("hard-coded ARN") for p in problems)
    assert "substitution PlanFunctionArn is not used by the ASL file" in problems


def test_error_names_unknown_error_reported(batch_definition: dict[str, Any]) -> None:
    retry = batch_definition["States"]["Plan Partitions"]["Retry"][0]
    retry["ErrorEquals"].append("TransientErrror")
    problems = checks.check_error_names(batch_definition, {"TransientError", "ThrottledError"})
    assert "Plan Partitions: matches unknown error TransientErrror" in problems


def test_error_names_retry_without_jitter_reported(batch_definition: dict[str, Any]) -> None:
    del batch_definition["States"]["Reconcile Run"]["Retry"][0]["JitterStrategy"]
    problems = checks.check_error_names(batch_definition, {"TransientError", "ThrottledError"})
    assert "Reconcile Run: Retry without full jitter and a delay cap" in problems


def test_rule_drift_changed_detail_type_reported(rules_dir: Path) -> None:
    template = load_template(template_paths()["transform"])
    ((_, rule),) = checks.resources_of(template, "AWS::Events::Rule")
    rule["EventPattern"]["detail-type"] = ["sluice.file.validated.v9"]
    pattern = json.loads((rules_dir / "transform.json").read_text("utf-8"))
    assert checks.check_rule_drift(template, pattern) == [
        "Rule: EventPattern differs from orchestration/rules"
    ]


def test_schema_drift_stale_template_reported(tmp_path: Path) -> None:
    stale = tmp_path / "platform.yaml"
    text = (REPO / "deploy" / "platform.yaml").read_text("utf-8")
    stale.write_text(text.replace("Type: JSONSchemaDraft4", "Type: OpenApi3", 1), "utf-8")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "deploy" / "gen_schemas.py"),
            "--check",
            "--template",
            str(stale),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "out of date" in result.stderr


# ---------------------------------------------------------------- rules pin their account


@pytest.mark.parametrize("svc", SERVICES)
def test_service_rule_pins_account(svc: str, translated: dict[str, Any]) -> None:
    assert checks.check_rules_pin_account(translated[svc]) == []


def test_rule_without_account_reported(translated: dict[str, Any]) -> None:
    cfn = translated["validate"]
    del cfn["Resources"]["Rule"]["Properties"]["EventPattern"]["account"]
    assert checks.check_rules_pin_account(cfn) == [
        "Rule: EventPattern does not pin account to AWS::AccountId"
    ]


def test_rule_drift_missing_account_reported(rules_dir: Path) -> None:
    template = load_template(template_paths()["output"])
    pattern = json.loads((rules_dir / "output.json").read_text("utf-8"))
    del pattern["account"]
    assert checks.check_rule_drift(template, pattern) == [
        "Rule: EventPattern differs from orchestration/rules"
    ]


# ---------------------------------------------------------------- the bus policy

HOME = "123456789012"
TRUSTED = "111122223333"
STRANGER = "444455556666"
# Who publishes each sluice.* source (contracts' SOURCE): the roles the bus policy must name.
PUBLISHERS: dict[str, set[tuple[str, str]]] = {
    "sluice.ingest": {("ingest", "FunctionRole")},
    "sluice.validate": {("validate", "FunctionRole")},
    "sluice.transform": {("transform", "FunctionRole")},
    "sluice.output": {("output", "FunctionRole"), ("orchestration", "ReconcileRole")},
    "sluice.batch": {("orchestration", "ReconcileRole")},
}


def _role_arn(translated: dict[str, Any], stack: str, role_id: str) -> str:
    name = translated[stack]["Resources"][role_id]["Properties"]["RoleName"]
    values = {"Stage": "dev", "AWS::Region": "us-east-1"}
    return f"arn:aws:iam::{HOME}:role/{checks.resolve_intrinsics(name, values)}"


def _bus(translated: dict[str, Any], **overrides: Any) -> list[dict[str, Any]]:
    values: dict[str, Any] = {
        "Stage": "dev",
        "TrustedAccountIds": [""],
        "TeamEventSources": ["*"],
        "AWS::AccountId": HOME,
        "AWS::Region": "us-east-1",
        "AWS::Partition": "aws",
        **overrides,
    }
    return checks.bus_policy_statements(translated["platform"], values)


def _put(statements: list[dict[str, Any]], who: str, source: str) -> str:
    account = who.split(":")[4]
    return checks.bus_put_decision(
        statements, principal_arn=who, account=account, home_account=HOME, source=source
    )


def _all_roles(translated: dict[str, Any]) -> set[str]:
    return {
        _role_arn(translated, stack, role_id)
        for stack in [*SERVICES, "orchestration"]
        for role_id, _ in checks.resources_of(translated[stack], "AWS::IAM::Role")
    }


def test_bus_sluice_sources_are_the_contracts_sources() -> None:
    from contracts.events import BUILTIN_MODELS

    assert {model.SOURCE for model in BUILTIN_MODELS} == set(PUBLISHERS)


@pytest.mark.parametrize("source", sorted(PUBLISHERS))
def test_bus_sluice_source_only_from_its_publishers(
    source: str, translated: dict[str, Any]
) -> None:
    statements = _bus(translated, TrustedAccountIds=[TRUSTED])
    publishers = {_role_arn(translated, s, r) for s, r in PUBLISHERS[source]}
    for role in sorted(_all_roles(translated)):
        expected = "allowed" if role in publishers else "denied"
        assert _put(statements, role, source) == expected, role
    for outsider in (
        f"arn:aws:iam::{HOME}:root",
        f"arn:aws:iam::{HOME}:role/sluice-dev-us-east-1-attacker",
        f"arn:aws:iam::{TRUSTED}:root",
        f"arn:aws:iam::{TRUSTED}:role/sluice-dev-us-east-1-validate",
    ):
        assert _put(statements, outsider, source) == "denied", outsider


def test_bus_unknown_sluice_source_denied_to_everyone(translated: dict[str, Any]) -> None:
    statements = _bus(translated)
    for who in [f"arn:aws:iam::{HOME}:root", *sorted(_all_roles(translated))]:
        assert _put(statements, who, "sluice.attacker") == "denied", who
        assert _put(statements, who, "sluice.validate.v2") == "denied", who


def test_bus_team_sources_from_account_and_trusted_accounts(translated: dict[str, Any]) -> None:
    statements = _bus(translated, TrustedAccountIds=[TRUSTED])
    assert _put(statements, f"arn:aws:iam::{HOME}:root", "acme.orders") == "allowed"
    assert _put(statements, f"arn:aws:iam::{HOME}:role/team-acme", "acme.orders") == "allowed"
    assert _put(statements, f"arn:aws:iam::{TRUSTED}:role/acme", "acme.orders") == "allowed"
    assert _put(statements, f"arn:aws:iam::{STRANGER}:root", "acme.orders") == "not-allowed"
    # Without TrustedAccountIds only the account itself may put events.
    alone = _bus(translated)
    assert _put(alone, f"arn:aws:iam::{TRUSTED}:root", "acme.orders") == "not-allowed"


def test_bus_team_sources_restricted_by_parameter(translated: dict[str, Any]) -> None:
    statements = _bus(translated, TeamEventSources=["acme.*", "globex.orders"])
    root = f"arn:aws:iam::{HOME}:root"
    assert _put(statements, root, "acme.orders") == "allowed"
    assert _put(statements, root, "globex.orders") == "allowed"
    assert _put(statements, root, "globex.returns") == "denied"
    # Sluice's own sources are governed by their role statements, not by the team list.
    validate = _role_arn(translated, "validate", "FunctionRole")
    assert _put(statements, validate, "sluice.validate") == "allowed"


def test_bus_role_statement_removed_lets_anyone_publish(translated: dict[str, Any]) -> None:
    del translated["platform"]["Resources"]["EventBusSluiceValidateSource"]
    statements = _bus(translated)
    assert _put(statements, f"arn:aws:iam::{HOME}:root", "sluice.validate") == "allowed"


def test_bus_policy_evaluation_refuses_unknown_operator() -> None:
    statement = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "events:PutEvents",
        "Condition": {"StringEqualsIgnoreCase": {"events:source": "x"}},
    }
    with pytest.raises(ValueError, match="StringEqualsIgnoreCase"):
        checks.bus_put_decision(
            [statement], principal_arn="a", account=HOME, home_account=HOME, source="x"
        )


def test_role_names_fit_iam_limit(translated: dict[str, Any]) -> None:
    # The longest stage and a long region name: IAM role names are at most 64 characters.
    for stack in [*SERVICES, "orchestration"]:
        for role_id, props in checks.resources_of(translated[stack], "AWS::IAM::Role"):
            values = {"Stage": "staging", "AWS::Region": "ap-southeast-2"}
            name = checks.resolve_intrinsics(props["RoleName"], values)
            assert name.startswith("sluice-staging-ap-southeast-2-"), role_id
            assert len(name) <= 64, name


# ---------------------------------------------------------------- capacity and retention


@pytest.mark.parametrize("svc", SERVICES)
def test_reserved_concurrency_covers_mapping_maximum(
    svc: str, translated: dict[str, Any], params: dict[str, Any]
) -> None:
    cfn = translated[svc]
    assert checks.check_reserved_concurrency(cfn, params[svc]) == []
    maximum = cfn["Parameters"]["MaximumConcurrency"]
    # The reservation follows the parameter, whatever value a deployment picks.
    for value in (maximum["MinValue"], maximum["MaxValue"]):
        values = {**params[svc], "MaximumConcurrency": value}
        assert checks.check_reserved_concurrency(cfn, values) == []


def test_reserved_concurrency_below_maximum_reported(
    translated: dict[str, Any], params: dict[str, Any]
) -> None:
    cfn = translated["transform"]
    cfn["Resources"]["Function"]["Properties"]["ReservedConcurrentExecutions"] = 2
    assert checks.check_reserved_concurrency(cfn, params["transform"]) == [
        "Function: reserved concurrency 2 < FunctionQueue MaximumConcurrency 10"
    ]
    cfn["Resources"]["Function"]["Metadata"] = {"SluiceReservedConcurrency": "a reason"}
    assert checks.check_reserved_concurrency(cfn, params["transform"]) == []


def _work_retention(translated: dict[str, Any]) -> tuple[int, int]:
    spec = translated["platform"]["Parameters"]["WorkRetentionDays"]
    return int(spec["Default"]), int(spec["MinValue"])


@pytest.mark.parametrize("svc", SERVICES)
def test_dlq_never_outlives_work_bucket_expiry(svc: str, translated: dict[str, Any]) -> None:
    default, minimum = _work_retention(translated)
    assert checks.check_dlq_within_work_retention(translated[svc], default, minimum) == []


def test_dlq_outliving_work_expiry_reported(translated: dict[str, Any]) -> None:
    problems = checks.check_dlq_within_work_retention(translated["validate"], 15, 7)
    assert problems == [
        "DeadLetterQueue: a parked message lives 15 days, the work bucket keeps data 7 days "
        "(WorkRetentionDays MinValue)"
    ]


def test_work_bucket_expires_after_work_retention_days(translated: dict[str, Any]) -> None:
    rules = translated["platform"]["Resources"]["WorkBucket"]["Properties"][
        "LifecycleConfiguration"
    ]["Rules"]
    assert [r["ExpirationInDays"] for r in rules if "ExpirationInDays" in r] == [
        {"Ref": "WorkRetentionDays"}
    ]


def _ratio(cfn: dict[str, Any], function_id: str) -> float:
    from sluice_shared.limits import Limits

    env = cfn["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    return float(env.get("SLUICE_MAX_DECOMPRESSION_RATIO", Limits().max_decompression_ratio))


def test_scratch_space_fits_largest_real_time_file(translated: dict[str, Any]) -> None:
    ingest = translated["ingest"]["Parameters"]["BatchThresholdBytes"]
    batch = translated["orchestration"]["Parameters"]["BatchThresholdBytes"]
    assert (ingest["Default"], ingest["MaxValue"]) == (batch["Default"], batch["MaxValue"])
    assert int(ingest["Default"]) <= int(ingest["MaxValue"])
    threshold = int(ingest["MaxValue"])
    validate = translated["validate"]
    ratio = _ratio(validate, "Function")
    assert (
        checks.check_scratch_space(checks.ephemeral_mib(validate, "Function"), threshold, ratio)
        == []
    )
    # Transform and output hold the staged rows of one file: at most the expanded bytes.
    for svc in ("transform", "output"):
        mib = checks.ephemeral_mib(translated[svc], "Function")
        assert mib * 2**20 >= threshold * _ratio(translated[svc], "Function"), svc


def test_scratch_space_too_small_reported() -> None:
    assert checks.check_scratch_space(512, 100 * 2**20, 100) == [
        "a real-time file of 104857600 bytes may need 10590617600 bytes of /tmp "
        "(x100 gunzipped + the object), validate has 536870912"
    ]
    # The old 256 MiB threshold with the default ratio needs more than Lambda's 10 GiB maximum.
    assert checks.check_scratch_space(10240, 256 * 2**20, 100) != []
