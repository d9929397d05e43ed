"""`make iam-proof`: least privilege, the necessity half. Every Allow statement of every role the
templates give a function, the state machine or the schedule is removed in turn (in a copy of
deploy/), the tests that exercise that role run against a local runtime provisioned from the
copy, and the outcome goes into a table in docs/security.md: role, statement, the test that
failed without it — or none, and then the statement is removed or kept with a written reason
(`KEPT`).

    python -m tools.iam_proof                      # every statement (long: progress printed)
    python -m tools.iam_proof --role output/FunctionRole --role ingest/FunctionRole
    python -m tools.iam_proof --statement output/FunctionRole/ReadFileManifests
    python -m tools.iam_proof --table              # rewrite the table from the last results
    python -m tools.iam_proof --list               # the statements and the tests of each role

By default one runtime serves every run: it is started from the copy (`SLUICE_DEPLOY_DIR`, which
the runtime's default template discovery honours), re-provisioned in place after each change of
the copy (the proof checks the role's policy in the runtime really lost the statement) with
every function's warm workers recycled (nothing a function cached under the previous policy
hides a removed grant), and the tests attach to it (`SLUICE_IAM_PROOF_PORT`). `--fresh` lets
each run's tests bring up their own runtime from the copy instead (slower, nothing shared
between runs). Before any removal, the tests run once on the unmodified copy and must pass:
otherwise a failure would be blamed on a statement. Results accumulate in
build/iam-proof/results.json, so a proof can be run role by role.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.templates import DEPLOY, REPO, load_template, template_paths, translate

PROOF_DIR = REPO / "build" / "iam-proof"
RESULTS = PROOF_DIR / "results.json"
SECURITY_MD = REPO / "docs" / "security.md"
TABLE_BEGIN = "<!-- BEGIN IAM PROOF TABLE (python -m tools.iam_proof) -->"
TABLE_END = "<!-- END IAM PROOF TABLE -->"
DEPLOY_DIR_ENV = "SLUICE_DEPLOY_DIR"  # sluice.local.runtime.DEPLOY_DIR_ENV
PORT_ENV = "SLUICE_IAM_PROOF_PORT"  # tests/e2e/test_iam_roles.py, test_batch_local_runtime.py
# What the copy's relative artefact paths (CodeUri ../../services/…, ContentUri ../build/…,
# DefinitionUri ../orchestration/…) must find next to its deploy/ folder.
LINKED = ("services", "orchestration", "build", "contracts")
# The runtime the proof starts serves every test module: the batch tests' parameters included.
RUNTIME_PARAMS = (
    "BatchThresholdBytes=2000000",
    "BatchPartitionBytes=1048576",
    "BatchMaxConcurrency=2",
)

_ROLES = "tests/e2e/test_iam_roles.py::"
_BATCH = "tests/e2e/test_batch_local_runtime.py::"
REALTIME = _ROLES + "test_realtime_file_completes_through_every_service_role"
# A real-time file whose rows are staged (too many to travel inline in the facts).
STAGED = _ROLES + "test_staged_file_completes_through_every_service_role"
REPLAY = _ROLES + "test_duplicate_transformed_after_completed_republishes_processed"
# A small file inline past a rule only EventBridge can judge (ListRules, TestEventPattern).
INLINE = _ROLES + "test_small_file_travels_inline_past_a_pattern_rule_through_the_stage_roles"
MISSING_KEY = _ROLES + "test_notification_for_a_missing_key_is_missing_not_denied"
VERSION_GONE = _ROLES + "test_raw_version_gone_before_validate_is_parked_not_denied"
PARKED = _ROLES + "test_malformed_message_is_parked_in_the_service_dlq[{}]"
BATCH_ROLES = _ROLES + "test_large_file_completes_through_the_batch_roles"
BATCH_FILE = _BATCH + "test_batch_local_runtime_ingest_routes_large_file_through_partitions"
SCHEDULE = _BATCH + "test_batch_local_runtime_schedule_fires_a_backfill_window"

# The tests that exercise each role, fastest and most telling first (the run stops at the
# first failure: one failing test is the proof a statement is needed).
ROLE_TESTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ingest", "FunctionRole"): (MISSING_KEY, PARKED.format("ingest"), REALTIME, BATCH_ROLES),
    ("validate", "FunctionRole"): (
        VERSION_GONE,
        PARKED.format("validate"),
        REALTIME,
        STAGED,
        INLINE,
    ),
    ("transform", "FunctionRole"): (PARKED.format("transform"), REALTIME, STAGED, INLINE),
    ("output", "FunctionRole"): (PARKED.format("output"), REPLAY, STAGED),
    # A run over a file plans without listing; the schedule's window lists the raw bucket.
    ("orchestration", "PlanRole"): (BATCH_ROLES, BATCH_FILE, SCHEDULE),
    ("orchestration", "RunPartitionRole"): (BATCH_ROLES,),
    ("orchestration", "RunBucketRole"): (BATCH_ROLES,),
    ("orchestration", "ReconcileRole"): (BATCH_ROLES,),
    ("orchestration", "StateMachineRole"): (BATCH_ROLES,),
    # The schedule's window covers the large file the first test puts in the raw bucket.
    ("orchestration", "ScheduleRole"): (BATCH_FILE, SCHEDULE),
}

# Statements no local test can need, kept with the reason (by Sid, or by stack/role/Sid). The
# AWS services that act with these grants on a function's behalf do not call through the local
# endpoint, so removing them changes nothing locally; `--skip-kept` does not run them.
KEPT: dict[str, str] = {
    "WriteOwnLogs": (
        "Lambda's runtime writes the function's log stream with the role; locally the runner "
        "writes the log file itself"
    ),
    "WriteTraces": (
        "the X-Ray daemon sends the function's (or the state machine's) traces with the role; "
        "there is no X-Ray locally"
    ),
    "UseDataKey": (
        "S3, DynamoDB and the log group call KMS for the data key with the caller's "
        "permissions; the local runtime does not model those KMS calls"
    ),
    "DeliverExecutionLogs": (
        "Step Functions sets up the execution log delivery with the role; locally the engine "
        "logs without it"
    ),
    "validate/FunctionRole/ListRawKeys": (
        "validate reads one version of the raw object; when that version is gone, S3 answers "
        "404 only to a caller allowed s3:ListBucket (403 otherwise: retried into the DLQ "
        "instead of parked as object_not_found). The local runtime applies that rule to a "
        "missing key, not to a missing version, so the test of a deleted version passes "
        "without it"
    ),
    "orchestration/RunPartitionRole/ListRawKeys": (
        "as validate's: a partition whose raw version is gone by the time it runs must answer "
        "404 (a bad partition, recorded), not 403; no local test deletes a version mid-run, "
        "and the local runtime applies the rule to missing keys only"
    ),
    "transform/FunctionRole/ListStagedRows": (
        "lists an announced staging area that is not the file's own or that holds several "
        "hash buckets; every real-time file has one bucket in its own area (a bucket per "
        "512 MiB, threshold 100 MiB), whose key is named, not listed"
    ),
    "output/FunctionRole/ListStagedRows": (
        "as transform's: lists an announced area that is not the file's own or holds several "
        "buckets; the tests' real-time files name their one staged key"
    ),
    "orchestration/RunPartitionRole/ListStagedRows": (
        "S3 answers a missing staged key 404 only to a caller allowed s3:ListBucket; whether "
        "it evaluates the s3:prefix condition with the key is not documented, and the local "
        "runtime sets no s3:prefix on a GET. Kept so a re-run partition's named keys answer "
        "404 where S3 does evaluate it"
    ),
    "orchestration/StateMachineRole/RunDistributedMapChildren": (
        "Step Functions starts a Distributed Map's child executions with the role; the local "
        "engine runs the children in process, without that call"
    ),
    "orchestration/StateMachineRole/ManageDistributedMapChildren": (
        "Step Functions describes and stops the child executions with the role; the local "
        "engine tracks its children in process"
    ),
    "orchestration/StateMachineRole/RedriveMapRuns": (
        "a redrive of a failed run (RedriveExecution re-runs the Map Run's failed children) "
        "uses it; the local engine redrives in process, without that call"
    ),
    "orchestration/ScheduleRole/DeadLetterUndeliveredStarts": (
        "the scheduler sends a start it could not deliver to its DLQ with the role; no test "
        "makes the state machine refuse a start, and without it the schedule's DLQ alarm "
        "would never see a failed backfill"
    ),
    "orchestration/RunBucketRole/ListStagedRows": (
        "run_bucket names each partition's staged object of its bucket; a partition with no "
        "row in the bucket has none and must answer 404 (S3 needs s3:ListBucket for that; see "
        "run_partition's). The tests' partitions all have rows in their one bucket"
    ),
}


@dataclass(frozen=True)
class RoleStatement:
    """One Allow statement of one role."""

    stack: str
    role_id: str
    role_name: str
    used_by: str
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    @property
    def key(self) -> str:
        """`stack/RoleId/Sid`: how results, options and `KEPT` name the statement."""
        return f"{self.stack}/{self.role_id}/{self.sid}"

    @property
    def tests(self) -> tuple[str, ...]:
        return ROLE_TESTS.get((self.stack, self.role_id), ())


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    if isinstance(value, dict) and "Ref" in value:
        return "${" + str(value["Ref"]) + "}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return "${" + (".".join(target) if isinstance(target, list) else str(target)) + "}"
    return json.dumps(value, sort_keys=True)


def _role_of(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def _role_users(cfn: dict[str, Any]) -> dict[str, str]:
    """Role logical id -> what assumes it (`function <name>`, `state machine`, `schedule`)."""
    users: dict[str, str] = {}
    for logical_id, resource in cfn.get("Resources", {}).items():
        props = resource.get("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::Lambda::Function":
            role = _role_of(props.get("Role"))
            if role:
                users[role] = f"function {_text(props.get('FunctionName', logical_id))}"
        elif kind == "AWS::StepFunctions::StateMachine":
            role = _role_of(props.get("RoleArn"))
            if role:
                users[role] = f"state machine {_text(props.get('StateMachineName', logical_id))}"
        elif kind == "AWS::Scheduler::Schedule":
            role = _role_of(props.get("Target", {}).get("RoleArn"))
            if role:
                users[role] = f"schedule {_text(props.get('Name', logical_id))}"
    return users


def role_statements(translated: dict[str, dict[str, Any]]) -> list[RoleStatement]:
    """Every Allow statement of every role a function, state machine or schedule assumes.

    Args:
        translated: stack short name -> translated (CloudFormation) template.

    Returns:
        The statements, in template order.

    Raises:
        ValueError: a statement without a Sid (the proof names statements by Sid).
    """
    found: list[RoleStatement] = []
    for stack, cfn in translated.items():
        users = _role_users(cfn)
        for role_id, resource in cfn.get("Resources", {}).items():
            if resource.get("Type") != "AWS::IAM::Role" or role_id not in users:
                continue
            props = resource["Properties"]
            for policy in props.get("Policies", []):
                for statement in _as_list(policy["PolicyDocument"]["Statement"]):
                    if statement.get("Effect") != "Allow":
                        continue
                    if "Sid" not in statement:
                        raise ValueError(f"{stack}/{role_id}: an Allow statement has no Sid")
                    found.append(
                        RoleStatement(
                            stack=stack,
                            role_id=role_id,
                            role_name=_text(props.get("RoleName", role_id)),
                            used_by=users[role_id],
                            sid=str(statement["Sid"]),
                            actions=tuple(str(a) for a in _as_list(statement.get("Action"))),
                            resources=tuple(_text(r) for r in _as_list(statement.get("Resource"))),
                        )
                    )
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def remove_statement(text: str, role_id: str, sid: str) -> str:
    """The template text without one statement (`- Sid: <sid>` and its lines) of one role.

    Comments and layout stay as they are, so the copy is the template a reviewer reads, minus
    one statement.

    Args:
        text: a SAM template's text.
        role_id: the role's logical id (a top-level resource).
        sid: the statement's Sid.

    Returns:
        The new text.

    Raises:
        ValueError: the role or the statement is not there, or the result is not exactly the
            template without that statement.
    """
    lines = text.splitlines(keepends=True)
    try:
        start = lines.index(f"  {role_id}:\n")
    except ValueError:
        raise ValueError(f"resource {role_id} not found") from None
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if lines[i].strip() and not lines[i].lstrip().startswith("#") and _indent(lines[i]) <= 2
        ),
        len(lines),
    )
    pattern = re.compile(rf"^( *)- Sid: {re.escape(sid)}\s*$")
    hits = [i for i in range(start, end) if pattern.match(lines[i])]
    if len(hits) != 1:
        raise ValueError(f"{role_id}: {len(hits)} statements with Sid {sid}")
    first = hits[0]
    depth = _indent(lines[first])
    last = first + 1
    while last < end and (not lines[last].strip() or _indent(lines[last]) > depth):
        last += 1
    result = "".join(lines[:first] + lines[last:])
    _check_removed(text, result, role_id, sid)
    return result


def _check_removed(before_text: str, after_text: str, role_id: str, sid: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        before_path, after_path = Path(tmp) / "before.yaml", Path(tmp) / "after.yaml"
        before_path.write_text(before_text, "utf-8")
        after_path.write_text(after_text, "utf-8")
        before, after = load_template(before_path), load_template(after_path)
    for policy in before["Resources"][role_id]["Properties"]["Policies"]:
        statements = policy["PolicyDocument"]["Statement"]
        policy["PolicyDocument"]["Statement"] = [s for s in statements if s.get("Sid") != sid]
    if before != after:
        raise ValueError(f"removing {role_id}/{sid} changed more than that statement")


def write_copy(work: Path, statement: RoleStatement | None) -> Path:
    """(Re)write `work/deploy`: the templates, minus `statement` when given.

    Args:
        work: the proof's folder; `services`, `orchestration`, `build` and `contracts` are
            linked next to the copy so its relative artefact paths resolve.
        statement: the statement to remove, or None for the unmodified templates.

    Returns:
        The copy's deploy folder (the value of SLUICE_DEPLOY_DIR).
    """
    work.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = work / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link)
            link.symlink_to(REPO / name, target_is_directory=True)
    deploy = work / "deploy"
    for path in template_paths().values():
        relative = path.relative_to(DEPLOY)
        (deploy / relative).parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text("utf-8")
        if statement is not None and template_paths()[statement.stack] == path:
            text = remove_statement(text, statement.role_id, statement.sid)
        target = deploy / relative
        if not target.exists() or target.read_text("utf-8") != text:
            target.write_text(text, "utf-8")
    # The environments' overrides (the runtime layer's SSM name), read by `sluice local up`.
    shutil.copyfile(DEPLOY / "samconfig.toml", deploy / "samconfig.toml")
    return deploy


# ---------------------------------------------------------------- running


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", PORT_ENV)}
    # The runtime's Step Functions SDK integrations use boto3's default credential chain.
    env.setdefault("AWS_ACCESS_KEY_ID", "local")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    env.update(extra)
    return env


def _sluice(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from sluice.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
        check=False,
    )


def run_tests(
    tests: tuple[str, ...], env: dict[str, str], junit: Path, timeout: float
) -> list[str]:
    """Run `tests` (stopping at the first failure); return the failed tests' names.

    Raises:
        RuntimeError: pytest could not run the tests (collection error, timeout).
    """
    junit.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        *tests,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return [f"(no result within {timeout:.0f} s)"]
    junit.with_suffix(".log").write_text(done.stdout + done.stderr, "utf-8")
    if done.returncode not in (0, 1) or not junit.exists():
        raise RuntimeError(f"pytest exited {done.returncode}:\n{done.stdout[-3000:]}")
    failed = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(str(case.get("name")))
    return failed


class SharedRuntime:
    """One runtime for the whole proof, re-provisioned from the copy after each change."""

    def __init__(self, deploy: Path, port: int) -> None:
        self.port = port
        self.state = PROOF_DIR / "state"
        self.env = _env(**{DEPLOY_DIR_ENV: str(deploy)})

    def start(self) -> None:
        args = ["local", "up", "--detach", "--no-schedules", "--no-prewarm"]
        args += ["--port", str(self.port), "--state-dir", str(self.state)]
        for param in RUNTIME_PARAMS:
            args += ["--param", param]
        up = _sluice(*args, env=self.env, timeout=300)
        if up.returncode != 0:
            raise RuntimeError(f"sluice local up failed:\n{up.stdout}{up.stderr}")

    def reprovision(self) -> str | None:
        """Re-provision from the copy and recycle every function's workers; None, or why the
        runtime refused it.

        The recycling makes each run's functions start cold: a warm worker keeps what it read
        under the previous policy (the published contracts' view, trusted for 30 s), so a grant
        it would need again is not asked for, and its removal would pass unnoticed."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_sluice/provision",
            data=b'{"recycle": true}',
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                response.read()
        except urllib.error.HTTPError as refused:
            detail = refused.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(json.loads(detail).get("error", detail))
            return " ".join(detail.split())[:300]
        return None

    def role_policy_text(self, role_name: str) -> str:
        import boto3

        factory: Any = boto3.client
        iam = factory(
            "iam",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        try:
            names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        except iam.exceptions.NoSuchEntityException:
            raise RuntimeError(
                f"the runtime has no role {role_name}: it does not provision the templates' "
                "roles, so no statement can be proved necessary"
            ) from None
        return json.dumps(
            [iam.get_role_policy(RoleName=role_name, PolicyName=n)["PolicyDocument"] for n in names]
        )

    def stop(self) -> None:
        _sluice("local", "down", "--port", str(self.port), env=self.env, timeout=120)


def _local_role_name(statement: RoleStatement) -> str:
    return statement.role_name.replace("${Stage}", "dev").replace("${AWS::Region}", "us-east-1")


def _load_results() -> dict[str, Any]:
    if RESULTS.exists():
        loaded: dict[str, Any] = json.loads(RESULTS.read_text("utf-8"))
        return loaded
    return {}


def _save_results(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", "utf-8")


def _short(test: str) -> str:
    return test.rsplit("::", 1)[-1]


def prove(
    statements: list[RoleStatement],
    *,
    fresh: bool,
    port: int,
    timeout: float,
    skip_kept: bool = False,
) -> dict[str, Any]:
    """Remove each statement in turn and run its role's tests; return the results by key."""
    results = _load_results()
    work = PROOF_DIR / "work"
    deploy = write_copy(work, None)
    runnable = [s for s in statements if s.tests and not (skip_kept and kept_reason(s))]
    shared = None if fresh else SharedRuntime(deploy, port)
    env = _env(**{DEPLOY_DIR_ENV: str(deploy)})
    if shared is not None:
        print(f"iam-proof: starting one runtime on port {port} from {deploy}", flush=True)
        shared.start()
        env[PORT_ENV] = str(port)
    started = time.monotonic()
    try:
        baseline = tuple(dict.fromkeys(t for s in runnable for t in s.tests))
        print(f"iam-proof: baseline, {len(baseline)} tests on the unmodified templates", flush=True)
        failed = run_tests(baseline, env, PROOF_DIR / "junit-baseline.xml", timeout * 3)
        if failed:
            log = PROOF_DIR / "junit-baseline.log"
            raise RuntimeError(
                f"the tests fail on the unmodified templates: {failed} (output: {log})"
            )
        print(f"iam-proof: baseline passed ({time.monotonic() - started:.0f} s)", flush=True)
        for index, statement in enumerate(runnable, 1):
            t0 = time.monotonic()
            prefix = f"iam-proof: [{index}/{len(runnable)}] {statement.key}"
            print(f"{prefix}: removed; running {len(statement.tests)} test(s)", flush=True)
            write_copy(work, statement)
            refused = None
            if shared is not None:
                refused = shared.reprovision()
                if refused is None:
                    policy = shared.role_policy_text(_local_role_name(statement))
                    if f'"Sid": "{statement.sid}"' in policy:
                        raise RuntimeError(
                            f"re-provisioning kept {statement.key} in the runtime: use --fresh"
                        )
            # A runtime that refuses the copy (Lambda checks an SQS trigger's role when the
            # mapping is created) is the first failure: no test can run on it.
            failed = (
                [f"provisioning ({refused})"]
                if refused
                else run_tests(statement.tests, env, PROOF_DIR / "junit.xml", timeout)
            )
            results[statement.key] = {
                "failed": [_short(t) for t in failed],
                "tests": [_short(t) for t in statement.tests],
                "seconds": round(time.monotonic() - t0, 1),
            }
            _save_results(results)
            elapsed = time.monotonic() - started
            eta = elapsed / index * (len(runnable) - index)
            verdict = f"needed ({_short(failed[0])} failed)" if failed else "no test failed"
            print(
                f"{prefix}: {verdict} in {time.monotonic() - t0:.0f} s; "
                f"{elapsed / 60:.1f} min so far, about {eta / 60:.0f} min left",
                flush=True,
            )
    finally:
        write_copy(work, None)
        if shared is not None:
            shared.stop()
    return results


# ---------------------------------------------------------------- the table


def kept_reason(statement: RoleStatement) -> str | None:
    """The written reason a statement no test needs is kept, if there is one."""
    return KEPT.get(statement.key) or KEPT.get(statement.sid)


def render_table(statements: list[RoleStatement], results: dict[str, Any]) -> str:
    """The Markdown table: role, statement, actions, the test that failed without it."""
    rows = [
        "| Role (assumed by) | Statement | Actions | Without it |",
        "|---|---|---|---|",
    ]
    for statement in statements:
        result = results.get(statement.key)
        if not statement.tests:
            outcome = "not run: no test exercises this role"
        elif result is None and kept_reason(statement):
            outcome = f"not run; kept: {kept_reason(statement)}"
        elif result is None:
            outcome = "not run yet"
        elif result["failed"]:
            outcome = f"`{result['failed'][0]}` fails"
        else:
            reason = kept_reason(statement)
            outcome = f"no test fails; kept: {reason}" if reason else "**no test fails**"
        name = statement.role_name.removeprefix("sluice-${Stage}-${AWS::Region}-")
        role = f"`{name}` ({statement.used_by.rsplit(' ', 1)[0]})"
        actions = ", ".join(f"`{a}`" for a in statement.actions)
        rows.append(f"| {role} | `{statement.sid}` | {actions} | {outcome} |")
    return "\n".join(rows) + "\n"


def write_table(statements: list[RoleStatement], results: dict[str, Any], path: Path) -> None:
    """Replace the table between the markers in `path` (docs/security.md).

    Raises:
        ValueError: the markers are missing.
    """
    text = path.read_text("utf-8")
    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise ValueError(f"{path}: no {TABLE_BEGIN} … {TABLE_END} markers")
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    table = render_table(statements, results)
    path.write_text(f"{head}{TABLE_BEGIN}\n{table}{TABLE_END}{tail}", "utf-8")


def unjustified(statements: list[RoleStatement], results: dict[str, Any]) -> list[str]:
    """Statements that were run, failed no test and have no written reason."""
    return [
        s.key
        for s in statements
        if s.key in results and not results[s.key]["failed"] and kept_reason(s) is None
    ]


# ---------------------------------------------------------------- command line


def _select(
    statements: list[RoleStatement], roles: list[str], keys: list[str]
) -> list[RoleStatement]:
    known_roles = {f"{s.stack}/{s.role_id}" for s in statements}
    known_keys = {s.key for s in statements}
    for role in roles:
        if role not in known_roles:
            raise SystemExit(f"unknown role {role}; known: {', '.join(sorted(known_roles))}")
    for key in keys:
        if key not in known_keys:
            raise SystemExit(f"unknown statement {key}; see --list")
    if not roles and not keys:
        return statements
    return [s for s in statements if f"{s.stack}/{s.role_id}" in roles or s.key in keys]


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring). Exits 1 when a statement that was run failed no
    test and has no written reason."""
    parser = argparse.ArgumentParser(prog="python -m tools.iam_proof")
    parser.add_argument("--role", action="append", default=[], help="stack/RoleId (repeatable)")
    parser.add_argument(
        "--statement", action="append", default=[], help="stack/RoleId/Sid (repeatable)"
    )
    parser.add_argument("--fresh", action="store_true", help="a runtime per run (slower)")
    parser.add_argument("--port", type=int, default=4599, help="the shared runtime's port")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test run")
    parser.add_argument("--list", action="store_true", help="list statements and tests")
    parser.add_argument("--table", action="store_true", help="only rewrite the table")
    parser.add_argument("--reset", action="store_true", help="forget earlier results first")
    parser.add_argument(
        "--skip-kept", action="store_true", help="do not run statements with a reason in KEPT"
    )
    parser.add_argument("--security-md", type=Path, default=SECURITY_MD)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    statements = role_statements({name: translate(path) for name, path in template_paths().items()})
    if args.list:
        for statement in statements:
            tests = ", ".join(_short(t) for t in statement.tests) or "(none)"
            print(f"{statement.key}  [{', '.join(statement.actions)}]  -> {tests}")
        return 0
    if args.table:
        results = _load_results()
    else:
        if args.reset:
            RESULTS.unlink(missing_ok=True)
        chosen = _select(statements, args.role, args.statement)
        print(f"iam-proof: {len(chosen)} statement(s) of {len(statements)}", flush=True)
        results = prove(
            chosen,
            fresh=args.fresh,
            port=args.port,
            timeout=args.timeout,
            skip_kept=args.skip_kept,
        )
    write_table(statements, results, args.security_md)
    print(f"iam-proof: table written to {args.security_md}", flush=True)
    missing = unjustified(statements, results)
    for key in missing:
        print(f"iam-proof: {key}: no test needs it; remove it or give the reason in KEPT")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
