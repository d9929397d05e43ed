"""The producer path end to end: the `sluice-contracts` wheel, built offline from contracts/ and
installed alone into a fresh virtual environment, validates a team's own event and publishes it
to the local runtime, where a rule delivers it to a queue.

Every step runs in a subprocess of the fresh environment (asynchronously: the runtime serves
requests on this test's event loop), so nothing of the project's environment helps it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.registry import ContractRegistry, parse_eventbridge_event
from contracts.tools import discover

if TYPE_CHECKING:
    from collections.abc import Callable

    from sluice.local.runtime import LocalRuntime
    from tests.integration.local.conftest import Waiter

REPO = Path(__file__).resolve().parents[3]
UV = Path(sys.executable).parent / "uv"
SAMPLE = REPO / "packages" / "sluice-contracts" / "examples" / "acme_inventory"

PRODUCER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime

    import sluice_contracts
    from sluice_contracts import Envelope, InvalidContract, publish, validated
    from acme_inventory.inventory_counted.v1 import InventoryCountedV1

    # A bad event is refused with every problem, before anything is sent.
    bad = {"specversion": "1.0", "id": "x", "source": "acme.warehouse",
           "type": "acme.inventory.counted.v1", "time": "2024-03-01T09:30:00Z",
           "correlationid": "c", "data": {"warehouse": "", "sku": "no spaces", "quantity": -1}}
    try:
        validated(bad, registry=sluice_contracts.ContractRegistry([InventoryCountedV1]))
    except InvalidContract as exc:
        print("refused", len(exc.problems))
    counted = InventoryCountedV1(
        warehouse="ams-1", sku="SKU-7", quantity=3, counted_at=datetime.now(UTC)
    )
    event = Envelope.wrap(counted, correlationid="count-7")
    [event_id] = publish([event])  # bus from $SLUICE_EVENT_BUS, endpoint from $AWS_ENDPOINT_URL
    print("published", event.id, event_id)
    """
)


async def _run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, f"{args}: {out.decode()}{err.decode()}"
    return out.decode()


def _queue_policy(queue_arn: str, rule_arn: str) -> str:
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


async def test_contracts_package_alone_publishes_a_team_event_to_the_local_runtime(
    runtime: LocalRuntime, aws: Callable[[str], Any], wait_for: Waiter, tmp_path: Path
) -> None:
    # GIVEN the wheel built offline from contracts/, installed alone in a fresh venv
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    package = str(REPO / "packages" / "sluice-contracts")
    offline = ["--offline", "--quiet", "--python"]
    await _run(str(UV), "build", "--no-build-isolation", "--wheel", *offline, sys.executable,
               "-o", str(dist), package)  # fmt: skip
    [wheel] = dist.glob("sluice_contracts-*.whl")
    await _run(str(UV), "venv", "--quiet", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    requirement = f"sluice-contracts[publish] @ {wheel.as_uri()}"
    lock = str(REPO / "requirements.lock")
    await _run(str(UV), "pip", "install", *offline, python, requirement, "-c", lock)
    isolated = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    probe = (
        "import importlib.util as u; print([m for m in ('contracts', 'pyarrow', 'orjson', "
        "'yaml', 'aioboto3', 'moto', 'sluice') if u.find_spec(m)])"
    )
    assert (await _run(python, "-c", probe, env=isolated, cwd=tmp_path)).strip() == "[]"
    # and a team's contract folder outside the repository (only its model), generated and
    # checked by the package's own CLI
    team = tmp_path / "team" / "acme_inventory"
    shutil.copytree(SAMPLE, team, ignore=shutil.ignore_patterns("__pycache__", "examples"))
    (team / "inventory_counted" / "v1" / "schema.json").unlink()
    tool = [python, "-m", "sluice_contracts"]
    generated = await _run(*tool, "generate", str(team), env=isolated, cwd=tmp_path)
    assert generated.count("wrote ") == 3  # schema.json, examples/first.json, CHECKSUMS
    assert "1 contracts OK" in await _run(*tool, "check", str(team), env=isolated, cwd=tmp_path)

    # and a consumer: a rule on the runtime's bus delivering the team's events to a queue
    bus = "sluice-test"
    async with aws("sqs") as sqs, aws("events") as events:
        url = (await sqs.create_queue(QueueName="acme-inventory-consumer"))["QueueUrl"]
        attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        queue_arn = attributes["Attributes"]["QueueArn"]
        pattern = {"source": ["acme.warehouse"], "detail-type": ["acme.inventory.counted.v1"]}
        rule = await events.put_rule(
            Name="acme-inventory", EventBusName=bus, EventPattern=json.dumps(pattern)
        )
        await sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": _queue_policy(queue_arn, rule["RuleArn"])}
        )
        await events.put_targets(
            Rule="acme-inventory", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}]
        )

        # WHEN the team's producer code runs in the fresh venv against the runtime's endpoint
        env = {
            **isolated,
            "PYTHONPATH": str(team.parent),
            "AWS_ENDPOINT_URL": runtime.endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "SLUICE_EVENT_BUS": bus,
        }
        script = tmp_path / "producer.py"
        script.write_text(PRODUCER)
        output = (await _run(python, str(script), env=env, cwd=tmp_path)).split()

        # THEN the bad event was refused with its four problems and the good one arrived
        assert output[:2] == ["refused", "4"]
        assert output[2] == "published"

        async def received() -> list[dict[str, str]]:
            answer = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
            return list(answer.get("Messages", []))

        [message] = await wait_for(received, timeout=30)
    for name in [m for m in sys.modules if m.startswith("acme_inventory")]:
        del sys.modules[name]  # an earlier test's copy of the same package
    [folder] = discover(team)
    envelope = parse_eventbridge_event(message["Body"], registry=ContractRegistry([folder.model]))
    assert envelope.id == output[3]
    assert (envelope.type, envelope.source) == ("acme.inventory.counted.v1", "acme.warehouse")
    assert envelope.data.sku == "SKU-7"
    assert envelope.correlationid == "count-7"


async def test_dry_run_entries_are_sent_by_the_aws_cli_to_the_local_runtime(
    runtime: LocalRuntime, aws: Callable[[str], Any], wait_for: Waiter, tmp_path: Path
) -> None:
    # GIVEN the entries `sluice events publish --dry-run` prints for a team's event
    from click.testing import CliRunner

    from sluice.cli import cli

    bus = "sluice-test"
    async with aws("sqs") as sqs, aws("events") as events:
        bus_arn = (await events.describe_event_bus(Name=bus))["Arn"]
        url = (await sqs.create_queue(QueueName="acme-cli-consumer"))["QueueUrl"]
        attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        queue_arn = attributes["Attributes"]["QueueArn"]
        pattern = {"source": ["acme.warehouse"]}
        rule = await events.put_rule(
            Name="acme-cli", EventBusName=bus, EventPattern=json.dumps(pattern)
        )
        await sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": _queue_policy(queue_arn, rule["RuleArn"])}
        )
        await events.put_targets(
            Rule="acme-cli", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}]
        )
        data = json.loads(next(iter(SAMPLE.rglob("first.json"))).read_text())["data"]
        args = [
            "events", "publish", "--type", "acme.inventory.counted.v1", "--data", json.dumps(data),
            "--model", "acme_inventory.inventory_counted.v1.model:InventoryCountedV1",
            "--bus", bus_arn, "--dry-run",
        ]  # fmt: skip
        sys.path.insert(0, str(SAMPLE.parent))
        try:
            printed = await asyncio.to_thread(CliRunner().invoke, cli, args)
        finally:
            sys.path.remove(str(SAMPLE.parent))
            for name in [m for m in sys.modules if m.startswith("acme_inventory")]:
                del sys.modules[name]
        assert printed.exit_code == 0, printed.output
        entries = tmp_path / "entries.json"
        entries.write_text(printed.stdout)

        # WHEN the AWS CLI sends them as they are
        cli_path = shutil.which("aws")
        assert cli_path is not None, "the AWS CLI is part of the machine's base Python"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
        put = ["events", "put-events", "--entries", f"file://{entries}"]
        sent = json.loads(
            await _run(cli_path, "--endpoint-url", runtime.endpoint_url, *put, env=env)
        )

        # THEN the bus accepted them and the consumer received the team's event
        assert sent["FailedEntryCount"] == 0

        async def received() -> list[dict[str, str]]:
            answer = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
            return list(answer.get("Messages", []))

        [message] = await wait_for(received, timeout=30)
    body = json.loads(message["Body"])
    assert body["detail-type"] == "acme.inventory.counted.v1"
    assert body["detail"]["data"] == data
