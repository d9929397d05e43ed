"""The Distributed Map: readers, batching, concurrency, tolerance, ResultWriter, Map Runs,
redrive."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import pytest

from sluice.local.workflow import api
from tests.unit.workflow.workflow_fakes import (
    FunctionRaised,
    InMemoryS3,
    held_until_concurrent,
    make_engine,
    run_definition,
)

FN = "arn:aws:lambda:us-east-1:123456789012:function:"


def _dmap(processor_states: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": "Work",
        "States": processor_states
        or {"Work": {"Type": "Task", "Resource": FN + "work", "End": True}},
    }
    return {
        "StartAt": "Fan",
        "States": {"Fan": {"Type": "Map", "ItemProcessor": processor, **fields, "End": True}},
    }


async def _ok(payload: Any) -> Any:
    return {"done": payload}


def _failing_on(bad: set[int]) -> Any:
    async def handler(payload: Any) -> Any:
        if payload["n"] in bad:
            raise FunctionRaised("PoisonInputError", f"item {payload['n']} is bad")
        return payload["n"]

    return handler


async def test_items_from_input_run_as_child_executions_with_own_arns() -> None:
    engine, *_ = make_engine({"work": _ok})
    execution = await run_definition(engine, _dmap(ItemsPath="$.items"), {"items": [1, 2, 3]})
    assert execution.output == [{"done": 1}, {"done": 2}, {"done": 3}]
    (map_run,) = engine.list_map_runs(execution.arn)
    children = engine.list_executions(map_run_arn=map_run.arn)
    assert len(children) == 3
    for child in children:
        assert child.arn.startswith("arn:aws:states:us-east-1:123456789012:express:sm/Fan:")
        assert child.status == "SUCCEEDED"
        assert child.map_run_arn == map_run.arn
    assert map_run.arn.startswith("arn:aws:states:us-east-1:123456789012:mapRun:sm/Fan:")
    types = [e["type"] for e in execution.history]
    assert types.index("MapRunStarted") < types.index("MapRunSucceeded")


async def test_item_reader_s3_listing_yields_object_metadata_items() -> None:
    s3 = InMemoryS3(page_size=2)
    for key in ("in/a.csv", "in/b.csv", "in/c.csv", "other/x"):
        s3.objects[("raw", key)] = "abc"
    engine, _, invoker, _ = make_engine({"work": _ok}, s3)
    definition = _dmap(
        ItemReader={
            "Resource": "arn:aws:states:::s3:listObjectsV2",
            "Parameters": {"Bucket": "raw", "Prefix.$": "$.prefix"},
        }
    )
    execution = await run_definition(engine, definition, {"prefix": "in/"})
    assert execution.status == "SUCCEEDED", execution.cause
    items = [payload for _, payload in invoker.calls]
    assert [i["Key"] for i in items] == ["in/a.csv", "in/b.csv", "in/c.csv"]
    assert items[0] == {
        "Etag": '"abc"',
        "Key": "in/a.csv",
        "LastModified": 1704067200,
        "Size": 3,
        "StorageClass": "STANDARD",
    }


@pytest.mark.parametrize(
    ("body", "config", "expected"),
    [
        ('[{"n": 1}, {"n": 2}]', {"InputType": "JSON"}, [{"n": 1}, {"n": 2}]),
        ('{"n": 1}\n\n{"n": 2}\n', {"InputType": "JSONL"}, [{"n": 1}, {"n": 2}]),
        (
            'id,name\n1,a\n2,"b, c"\n',
            {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            [{"id": "1", "name": "a"}, {"id": "2", "name": "b, c"}],
        ),
        (
            "1|a\n2|b\n",
            {
                "InputType": "CSV",
                "CSVHeaderLocation": "GIVEN",
                "CSVHeaders": ["id", "name"],
                "CSVDelimiter": "PIPE",
            },
            [{"id": "1", "name": "a"}, {"id": "2", "name": "b"}],
        ),
        (
            '[{"n": 1}, {"n": 2}, {"n": 3}]',
            {"InputType": "JSON", "MaxItems": 2},
            [{"n": 1}, {"n": 2}],
        ),
    ],
)
async def test_item_reader_get_object_parses_input_type(
    body: str, config: dict[str, Any], expected: list[Any]
) -> None:
    s3 = InMemoryS3()
    s3.objects[("work", "manifest")] = body
    engine, _, invoker, _ = make_engine({"work": _ok}, s3)
    definition = _dmap(
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": config,
            "Parameters": {"Bucket": "work", "Key": "manifest"},
        }
    )
    execution = await run_definition(engine, definition, {})
    assert execution.status == "SUCCEEDED", execution.cause
    assert sorted((p for _, p in invoker.calls), key=json.dumps) == sorted(expected, key=json.dumps)


async def test_item_reader_manifest_reads_inventory_data_files() -> None:
    s3 = InMemoryS3()
    s3.objects[("inv", "data/1.csv.gz")] = gzip.compress(b'"raw","a.csv"\n"raw","b.csv"\n')
    s3.objects[("inv", "manifest.json")] = json.dumps(
        {
            "sourceBucket": "raw",
            "destinationBucket": "arn:aws:s3:::inv",
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key",
            "files": [{"key": "data/1.csv.gz", "size": 1, "MD5checksum": "x"}],
        }
    )
    engine, _, invoker, _ = make_engine({"work": _ok}, s3)
    definition = _dmap(
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "MANIFEST", "MaxItemsPath": "$.max"},
            "Parameters": {"Bucket": "inv", "Key": "manifest.json"},
        }
    )
    execution = await run_definition(engine, definition, {"max": 5})
    assert execution.status == "SUCCEEDED", execution.cause
    assert sorted(p["Key"] for _, p in invoker.calls) == ["a.csv", "b.csv"]
    assert invoker.calls[0][1]["Bucket"] == "raw"


async def test_item_batcher_groups_by_count_with_batch_input_and_selector() -> None:
    engine, _, invoker, _ = make_engine({"work": _ok})
    definition = _dmap(
        ItemsPath="$.items",
        ItemSelector={"n.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
        ItemBatcher={"MaxItemsPerBatchPath": "$.per", "BatchInput": {"run.$": "$.run"}},
    )
    execution = await run_definition(
        engine, definition, {"items": [5, 6, 7], "per": 2, "run": "r1"}
    )
    assert execution.status == "SUCCEEDED", execution.cause
    assert [p for _, p in invoker.calls] == [
        {"BatchInput": {"run": "r1"}, "Items": [{"n": 5, "i": 0}, {"n": 6, "i": 1}]},
        {"BatchInput": {"run": "r1"}, "Items": [{"n": 7, "i": 2}]},
    ]


async def test_item_batcher_byte_limit_keeps_each_child_input_under_limit() -> None:
    engine, _, invoker, _ = make_engine({"work": _ok})
    items = [{"pad": "x" * 40, "n": i} for i in range(10)]
    item_bytes = len(json.dumps(items[0], separators=(",", ":")))
    limit = len('{"Items":[]}') + 3 * item_bytes + 2  # exactly three items with two commas
    definition = _dmap(ItemsPath="$.items", ItemBatcher={"MaxInputBytesPerBatch": limit})
    execution = await run_definition(engine, definition, {"items": items})
    assert execution.status == "SUCCEEDED", execution.cause
    batches = [p["Items"] for _, p in invoker.calls]
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    for _, payload in invoker.calls:
        assert len(json.dumps(payload, separators=(",", ":")).encode()) <= limit
    assert [item for batch in batches for item in batch] == items


async def test_max_concurrency_bounds_running_children() -> None:
    engine, _, invoker, _ = make_engine({"work": held_until_concurrent(3)})
    definition = _dmap(ItemsPath="$.items", MaxConcurrencyPath="$.limit")
    execution = await run_definition(engine, definition, {"items": list(range(12)), "limit": 3})
    assert execution.output == list(range(12))
    assert invoker.peak == 3
    (map_run,) = engine.list_map_runs(execution.arn)
    assert map_run.max_concurrency == 3


async def test_failures_within_tolerated_percentage_succeed_with_errors_in_output() -> None:
    engine, *_ = make_engine({"work": _failing_on({2})})
    definition = _dmap(ItemsPath="$.items", ToleratedFailurePercentage=25)
    items = [{"n": i} for i in range(4)]
    execution = await run_definition(engine, definition, {"items": items})
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output[2]["Error"] == "PoisonInputError"
    assert [execution.output[i] for i in (0, 1, 3)] == [0, 1, 3]
    (map_run,) = engine.list_map_runs(execution.arn)
    assert (map_run.status, map_run.counts(items=True)["failed"]) == ("SUCCEEDED", 1)


async def test_failures_above_tolerated_percentage_fail_the_map() -> None:
    engine, *_ = make_engine({"work": _failing_on({1, 2})})
    definition = _dmap(ItemsPath="$.items", ToleratedFailurePercentage=25, MaxConcurrency=1)
    execution = await run_definition(engine, definition, {"items": [{"n": i} for i in range(4)]})
    assert (execution.status, execution.error) == (
        "FAILED",
        "States.ExceedToleratedFailureThreshold",
    )
    (map_run,) = engine.list_map_runs(execution.arn)
    assert map_run.status == "FAILED"
    assert "MapRunFailed" in [e["type"] for e in execution.history]


@pytest.mark.parametrize(("count", "status"), [(2, "SUCCEEDED"), (1, "FAILED")])
async def test_tolerated_failure_count_is_the_threshold(count: int, status: str) -> None:
    engine, *_ = make_engine({"work": _failing_on({0, 3})})
    definition = _dmap(ItemsPath="$.items", ToleratedFailureCountPath="$.tolerate")
    execution = await run_definition(
        engine, definition, {"items": [{"n": i} for i in range(6)], "tolerate": count}
    )
    assert execution.status == status


async def test_zero_tolerance_default_fails_on_first_failure() -> None:
    engine, *_ = make_engine({"work": _failing_on({0})})
    execution = await run_definition(engine, _dmap(ItemsPath="$"), [{"n": 0}, {"n": 1}])
    assert execution.error == "States.ExceedToleratedFailureThreshold"


async def test_result_writer_writes_aws_shaped_manifest_and_result_files() -> None:
    s3 = InMemoryS3()
    engine, *_ = make_engine({"work": _failing_on({1})}, s3)
    definition = _dmap(
        ItemsPath="$.items",
        ToleratedFailureCount=1,
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "work", "Prefix": "results"},
        },
    )
    execution = await run_definition(engine, definition, {"items": [{"n": i} for i in range(3)]})
    assert execution.status == "SUCCEEDED", execution.cause
    (map_run,) = engine.list_map_runs(execution.arn)
    manifest_key = f"results/{map_run.id}/manifest.json"
    # The state's output is the pointer, not the results.
    assert execution.output == {
        "MapRunArn": map_run.arn,
        "ResultWriterDetails": {"Bucket": "work", "Key": manifest_key},
    }
    manifest = s3.json("work", manifest_key)
    succeeded_key = f"results/{map_run.id}/SUCCEEDED_0.json"
    failed_key = f"results/{map_run.id}/FAILED_0.json"
    assert manifest == {
        "DestinationBucket": "work",
        "MapRunArn": map_run.arn,
        "ResultFiles": {
            "FAILED": [{"Key": failed_key, "Size": len(s3.objects[("work", failed_key)])}],
            "PENDING": [],
            "SUCCEEDED": [{"Key": succeeded_key, "Size": len(s3.objects[("work", succeeded_key)])}],
        },
    }
    succeeded = s3.json("work", succeeded_key)
    assert [json.loads(r["Output"]) for r in succeeded] == [0, 2]
    assert [json.loads(r["Input"]) for r in succeeded] == [{"n": 0}, {"n": 2}]
    record = succeeded[0]
    assert set(record) >= {
        "ExecutionArn",
        "Input",
        "InputDetails",
        "Name",
        "Output",
        "StartDate",
        "StopDate",
        "Status",
        "StateMachineArn",
    }
    assert record["Status"] == "SUCCEEDED"
    assert record["InputDetails"] == {"Included": True}
    (failed,) = s3.json("work", failed_key)
    assert (failed["Status"], failed["Error"]) == ("FAILED", "PoisonInputError")
    assert json.loads(failed["Cause"])["errorMessage"] == "item 1 is bad"
    assert "Output" not in failed


async def test_result_writer_still_writes_when_threshold_exceeded() -> None:
    s3 = InMemoryS3()
    engine, *_ = make_engine({"work": _failing_on({0})}, s3)
    definition = _dmap(
        ItemsPath="$",
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "work", "Prefix": "out/"},
        },
    )
    execution = await run_definition(engine, definition, [{"n": 0}])
    assert execution.error == "States.ExceedToleratedFailureThreshold"
    (map_run,) = engine.list_map_runs(execution.arn)
    manifest = s3.json("work", f"out/{map_run.id}/manifest.json")
    assert len(manifest["ResultFiles"]["FAILED"]) == 1
    assert manifest["ResultFiles"]["SUCCEEDED"] == []


async def test_result_writer_config_compact_jsonl_writes_outputs_only() -> None:
    s3 = InMemoryS3()
    engine, *_ = make_engine({"work": _ok}, s3)
    definition = _dmap(
        ItemsPath="$",
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "w", "Prefix": "p"},
            "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"},
        },
    )
    execution = await run_definition(engine, definition, [1, 2])
    (map_run,) = engine.list_map_runs(execution.arn)
    body = s3.objects[("w", f"p/{map_run.id}/SUCCEEDED_0.jsonl")]
    assert [json.loads(line) for line in str(body).splitlines()] == [{"done": 1}, {"done": 2}]


async def test_describe_map_run_reports_item_and_execution_counts() -> None:
    async def batch(payload: Any) -> Any:
        return await _failing_on({0})(payload["Items"][0])

    engine, *_ = make_engine({"work": batch})
    definition = _dmap(
        ItemsPath="$", ItemBatcher={"MaxItemsPerBatch": 1}, ToleratedFailurePercentage=50
    )
    execution = await run_definition(engine, definition, [{"n": 0}, {"n": 1}, {"n": 2}])
    (map_run,) = engine.list_map_runs(execution.arn)
    status, doc = await api.handle(
        engine, "AWSStepFunctions.DescribeMapRun", {"mapRunArn": map_run.arn}
    )
    assert status == 200
    assert doc["status"] == "SUCCEEDED"
    assert doc["toleratedFailurePercentage"] == 50
    for key in ("itemCounts", "executionCounts"):
        counts = doc[key]
        assert (counts["total"], counts["succeeded"], counts["failed"], counts["pending"]) == (
            3,
            2,
            1,
            0,
        )
    status, doc = await api.handle(engine, "ListMapRuns", {"executionArn": execution.arn})
    assert [r["mapRunArn"] for r in doc["mapRuns"]] == [map_run.arn]


async def test_redrive_reruns_only_failed_children() -> None:
    broken = {"on": True}
    calls: list[int] = []

    async def work(payload: Any) -> Any:
        calls.append(payload["n"])
        if broken["on"] and payload["n"] in (1, 3):
            raise FunctionRaised("TransientError", "downstream down")
        return payload["n"] * 10

    s3 = InMemoryS3()
    engine, *_ = make_engine({"work": work}, s3)
    definition = {
        "StartAt": "Plan",
        "States": {
            "Plan": {"Type": "Pass", "Next": "Fan"},
            **_dmap(
                ItemsPath="$.items",
                ResultWriter={
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": "w", "Prefix": "r"},
                },
            )["States"],
        },
    }
    execution = await run_definition(engine, definition, {"items": [{"n": i} for i in range(5)]})
    assert execution.error == "States.ExceedToleratedFailureThreshold"
    (map_run,) = engine.list_map_runs(execution.arn)
    first_children = {
        c.execution.arn for c in map_run.children.values() if c.execution.status == "SUCCEEDED"
    }
    not_succeeded = {
        i
        for i in range(5)
        if i not in map_run.children or map_run.children[i].execution.status != "SUCCEEDED"
    }
    assert {1, 3} <= not_succeeded
    assert len(not_succeeded) < 5
    # GIVEN the downstream recovered WHEN the execution is redriven
    broken["on"] = False
    calls.clear()
    status, _ = await api.handle(engine, "RedriveExecution", {"executionArn": execution.arn})
    assert status == 200
    redriven = await engine.wait(execution.arn)
    # THEN only the children that had not succeeded ran again, in the same Map Run
    assert redriven.status == "SUCCEEDED", redriven.cause
    assert set(calls) == not_succeeded
    assert len(calls) == len(not_succeeded)
    assert engine.list_map_runs(execution.arn) == [map_run]
    assert map_run.redrive_count == 1
    assert first_children <= {c.execution.arn for c in map_run.children.values()}
    succeeded = s3.json("w", f"r/{map_run.id}/SUCCEEDED_0.json")
    assert sorted(json.loads(r["Output"]) for r in succeeded) == [0, 10, 20, 30, 40]
    assert redriven.redrive_count == 1
    assert "ExecutionRedriven" in [e["type"] for e in redriven.history]


async def test_redrive_of_succeeded_execution_is_rejected() -> None:
    engine, *_ = make_engine({"work": _ok})
    execution = await run_definition(engine, _dmap(ItemsPath="$"), [1])
    status, doc = await api.handle(engine, "RedriveExecution", {"executionArn": execution.arn})
    assert (status, doc["__type"]) == (400, "ExecutionNotRedrivable")


async def test_child_context_object_has_child_execution_and_map_item() -> None:
    engine, *_ = make_engine()
    states = {
        "P": {
            "Type": "Pass",
            "Parameters": {"id.$": "$$.Execution.Id", "input.$": "$$.Execution.Input"},
            "End": True,
        }
    }
    definition = _dmap(states, ItemsPath="$")
    definition["States"]["Fan"]["ItemProcessor"]["StartAt"] = "P"
    execution = await run_definition(engine, definition, ["a"])
    (out,) = execution.output
    assert out["input"] == "a"
    assert ":express:sm/Fan:" in out["id"]


async def test_stop_aborts_running_children_and_redrive_finishes_them() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def gated(payload: Any) -> Any:
        started.set()
        await release.wait()
        return payload

    engine, *_ = make_engine({"work": gated})
    engine.create_state_machine("sm", json.dumps(_dmap(ItemsPath="$")), "arn:aws:iam::1:role/r")
    execution = engine.start_execution(
        "arn:aws:states:us-east-1:123456789012:stateMachine:sm", "[1, 2]"
    )
    await asyncio.wait_for(started.wait(), timeout=60)
    # WHEN the execution is stopped while children run
    engine.stop_execution(execution.arn, "Operator", "stopped by hand")
    await engine.wait(execution.arn)
    (map_run,) = engine.list_map_runs(execution.arn)
    assert execution.status == "ABORTED"
    assert map_run.status == "ABORTED"
    assert {c.execution.status for c in map_run.children.values()} == {"ABORTED"}
    # THEN a redrive re-runs the aborted children in the same Map Run
    release.set()
    await engine.redrive_execution(execution.arn)
    finished = await engine.wait(execution.arn)
    assert (finished.status, finished.output) == ("SUCCEEDED", [1, 2])
    assert engine.list_map_runs(execution.arn) == [map_run]


async def test_children_run_as_the_execution_role() -> None:
    from sluice.local.workflow.ports import EXECUTION_ROLE
    from tests.unit.workflow.workflow_fakes import ROLE

    # GIVEN a work function that reports the role its caller acts as
    async def whose_role(payload: Any) -> Any:
        return EXECUTION_ROLE.get()

    engine, *_ = make_engine({"work": whose_role})
    # WHEN a Distributed Map fans out THEN every child task runs as the state machine's role
    execution = await run_definition(engine, _dmap(ItemsPath="$.items"), {"items": [1, 2, 3]})
    assert execution.output == [ROLE, ROLE, ROLE]
    # AND outside an execution no role is set (the runtime's own calls act as themselves)
    assert EXECUTION_ROLE.get() is None
