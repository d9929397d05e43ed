"""The cost model against figures computed by hand, and `sluice cost` offline."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sluice.ops.cost import (
    Usage,
    estimate,
    glue_equivalent,
    money,
    parse_report_line,
    read_report_logs,
    request_model,
    summarize_functions,
)
from sluice.pricing import REQUIRED_ITEMS, PriceBook, PriceBookError, load_prices
from tests.unit.cli.support import Invoke

AWS_REPORT = (
    "REPORT RequestId: 3f5e2a4c-1111-2222-3333-444455556666\tDuration: 1234.56 ms\t"
    "Billed Duration: 1235 ms\tMemory Size: 1024 MB\tMax Memory Used: 187 MB\t"
    "Init Duration: 412.33 ms\tXRAY TraceId: 1-abc\tSegmentId: def\tSampled: true\t"
)


def _report(billed_ms: int, memory_mb: int, n: int = 0, init: bool = False) -> str:
    line = (
        f"REPORT RequestId: r{n}\tDuration: {billed_ms - 0.5:.2f} ms\t"
        f"Billed Duration: {billed_ms} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: 90 MB"
    )
    return line + ("\tInit Duration: 300.00 ms" if init else "") + "\n"


@pytest.fixture
def prices() -> PriceBook:
    return load_prices()


def test_parse_report_line_reads_aws_line_with_extra_fields() -> None:
    invocation = parse_report_line(AWS_REPORT, "sluice-dev-validate")

    assert invocation is not None
    assert invocation.billed_ms == 1235
    assert invocation.memory_mb == 1024
    assert invocation.max_memory_mb == 187
    assert invocation.init_ms == pytest.approx(412.33)
    assert invocation.gb_seconds == pytest.approx(1.235)


def test_parse_report_line_ignores_other_lines_and_rejects_broken_reports() -> None:
    assert parse_report_line("START RequestId: x Version: $LATEST", "f") is None
    with pytest.raises(ValueError, match="billed duration"):
        parse_report_line("REPORT RequestId: x\tDuration: 3.00 ms", "f")


def test_read_report_logs_takes_function_from_file_name_in_state_dir(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "sluice-dev-ingest.log").write_text(
        "START RequestId: r0 Version: $LATEST\n" + _report(100, 256, init=True) + "END\n"
    )
    (logs / "sluice-dev-output.log").write_text(_report(2000, 2048) + _report(1000, 2048, 1))

    functions = summarize_functions(read_report_logs(tmp_path))

    assert [(f.function, f.invocations, f.billed_ms, f.cold_starts) for f in functions] == [
        ("sluice-dev-ingest", 1, 100, 1),
        ("sluice-dev-output", 2, 3000, 0),
    ]
    # 0.1 s × 0.25 GB = 0.025; 3 s × 2 GB = 6
    assert [f.gb_seconds for f in functions] == [pytest.approx(0.025), pytest.approx(6.0)]


def test_read_report_logs_of_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_report_logs(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"no \*\.log"):
        read_report_logs(tmp_path)


def test_estimate_lambda_lines_match_hand_computed_figures(prices: PriceBook) -> None:
    # GIVEN 10 invocations of 1 s at 1024 MB = 10 GB-s, over 2 files of 0.5 GiB
    invocations = [parse_report_line(_report(1000, 1024, n), "f") for n in range(10)]
    usage = Usage(
        functions=summarize_functions(i for i in invocations if i), files=2, bytes_in=2**30
    )

    report = estimate(usage, prices)

    compute, requests = report.lines
    assert compute.cost == pytest.approx(10 * 0.0000133334)  # $0.000133334
    assert requests.cost == pytest.approx(10 * 0.20 / 1_000_000)  # $0.000002
    assert report.total == pytest.approx(0.000135334)
    assert report.per_file == pytest.approx(0.000135334 / 2)
    assert report.per_gb == pytest.approx(0.000135334)
    assert compute.arithmetic == "10 GB-second × $0.0000133334 = $0.000133"


def test_estimate_x86_costs_more_per_gb_second(prices: PriceBook) -> None:
    invocation = parse_report_line(_report(1000, 1024), "f")
    assert invocation is not None
    arm = estimate(Usage(functions=summarize_functions([invocation])), prices)
    x86 = estimate(
        Usage(functions=summarize_functions([invocation]), architecture="x86_64"), prices
    )

    assert arm.lines[0].cost == pytest.approx(0.0000133334)
    assert x86.lines[0].cost == pytest.approx(0.0000166667)


def test_estimate_prices_every_request_kind(prices: PriceBook) -> None:
    usage = Usage(
        sfn_standard_transitions=1000,
        sfn_express_requests=1_000_000,
        sfn_express_gb_seconds=100,
        sqs_requests=1_000_000,
        eventbridge_events=2_000_000,
        s3_put_requests=1000,
        s3_get_requests=10_000,
        s3_storage_gb_month=10,
        dynamodb_wru=1_000_000,
        dynamodb_rru=4_000_000,
    )

    costs = {line.item: line.cost for line in estimate(usage, prices).lines}

    assert costs == pytest.approx(
        {
            "Lambda compute (arm64)": 0.0,
            "Lambda requests": 0.0,
            "Step Functions standard": 0.025,
            "Step Functions express requests": 1.00,
            "Step Functions express duration": 0.001667,
            "SQS requests": 0.40,
            "EventBridge custom events": 2.00,
            "S3 PUT/LIST requests": 0.005,
            "S3 GET requests": 0.004,
            "S3 storage": 0.23,
            "DynamoDB writes": 0.625,
            "DynamoDB reads": 0.50,
        }
    )


def test_request_model_counts_buckets_per_file() -> None:
    # 100 MiB → 2 buckets of 64 MiB; 1 KiB → 1 bucket
    counts = request_model([100 * 2**20, 1024])

    assert counts == {
        "eventbridge_events": 14,
        "sqs_requests": 24,
        "dynamodb_wru": 40,
        "dynamodb_rru": 8,
        "s3_put_requests": (3 * 2 + 5) + (3 * 1 + 5),
        "s3_get_requests": (2 * 2 + 2) + (2 * 1 + 2),
    }


def test_usage_apply_counts_rejects_unknown_and_negative_figures() -> None:
    usage = Usage()
    usage.apply_counts({"sqs_requests": 7, "s3_storage_gb_month": 1})

    assert (usage.sqs_requests, usage.s3_storage_gb_month) == (7, 1.0)
    assert usage.measured == {"sqs_requests", "s3_storage_gb_month"}
    with pytest.raises(ValueError, match="unknown usage figure"):
        usage.apply_counts({"lambda_requests": 1})
    with pytest.raises(ValueError, match=">= 0"):
        usage.apply_counts({"sqs_requests": -1})


def test_glue_equivalent_applies_minimums_and_dpus(prices: PriceBook) -> None:
    jobs = {g.job: g for g in glue_equivalent(30, prices)}

    # 2 DPU × 60 s (1-minute minimum) = 1/30 DPU-h × $0.44
    assert jobs["Spark, Glue 2.0+ (2 DPU minimum)"].cost == pytest.approx(0.44 / 30)
    # 2 DPU × 600 s (10-minute minimum) = 1/3 DPU-h
    assert jobs["Spark, Glue 0.9/1.0 (2 DPU minimum)"].cost == pytest.approx(0.44 / 3)
    # 0.0625 DPU × 60 s = 1/960 DPU-h
    assert jobs["Python shell (0.0625 DPU)"].cost == pytest.approx(0.44 / 960)
    assert jobs["Spark, Glue 2.0+ (2 DPU minimum)"].arithmetic == (
        "2 DPU × max(30 s, 60 s)/3600 h × $0.44/DPU-h = $0.014667"
    )


def test_glue_equivalent_above_minimum_bills_per_second(prices: PriceBook) -> None:
    (spark, *_) = glue_equivalent(900.2, prices, spark_dpus=10)

    # 10 DPU × 901 s = 2.50278 DPU-h × $0.44
    assert spark.cost == pytest.approx(10 * 901 / 3600 * 0.44)


def test_money_shows_sub_cent_figures() -> None:
    assert money(0) == "$0"
    assert money(12.345) == "$12.35"
    assert money(0.000135334) == "$0.000135"
    assert money(0.0000001) == "$1.00e-07"


def test_bundled_prices_name_a_source_and_date_for_every_item() -> None:
    book = load_prices()

    assert set(book.items) >= REQUIRED_ITEMS
    for name, price in book.items.items():
        assert price.source.startswith("https://aws.amazon.com/"), name
        assert price.as_of


def test_load_prices_missing_item_raises(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("region: us-east-1\nitems: {}\n")

    with pytest.raises(PriceBookError, match="lack"):
        load_prices(path)


def test_cost_command_offline_from_logs_prints_per_file_and_glue(
    sluice: Invoke, tmp_path: Path
) -> None:
    # GIVEN 4 invocations: 3 × 500 ms + 1 × 1500 ms at 2048 MB = 3 s + 3 s = 6 GB-s
    log = tmp_path / "sluice-dev-validate.log"
    log.write_text("".join(_report(500, 2048, n) for n in range(3)) + _report(1500, 2048, 3))

    result = sluice("--json", "cost", "--logs", str(log), "--files", "2", "--gb", "1")
    human = sluice("cost", "--logs", str(log), "--files", "2", "--gb", "1")

    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    lines = {line["item"]: line for line in report["lines"]}
    assert lines["Lambda compute (arm64)"]["quantity"] == 6
    assert lines["Lambda requests"]["quantity"] == 4
    assert lines["EventBridge custom events"]["quantity"] == 14
    assert lines["EventBridge custom events"]["measured"] is False
    expected = (
        6 * 0.0000133334
        + 4 * 0.2e-6
        + 14 * 1e-6
        + 24 * 0.4e-6
        + 40 * 0.625e-6
        + 8 * 0.125e-6
        + 2 * (3 * 8 + 5) * 0.005e-3  # 0.5 GiB each → 8 buckets
        + 2 * (2 * 8 + 2) * 0.0004e-3
    )
    assert report["total_usd"] == pytest.approx(expected)
    assert report["per_file_usd"] == pytest.approx(expected / 2)
    assert report["per_gb_usd"] == pytest.approx(expected)
    assert report["glue"]["duration_s"] == 3.0
    assert report["request_counts_from"] == "per-file model"
    assert "per GiB" in human.stdout
    assert "Spark, Glue 2.0+" in human.stdout


def test_cost_command_measured_usage_overrides_model(sluice: Invoke, tmp_path: Path) -> None:
    log = tmp_path / "f.log"
    log.write_text(_report(100, 128))
    usage = tmp_path / "usage.json"
    usage.write_text('{"sqs_requests": 5, "eventbridge_events": 1}')

    result = sluice(
        "--json", "cost", "--logs", str(log), "--files", "1", "--gb", "0.001", "--usage", str(usage)
    )

    lines = {line["item"]: line for line in orjson.loads(result.stdout)["lines"]}
    assert (lines["SQS requests"]["quantity"], lines["SQS requests"]["measured"]) == (5, True)
    assert lines["EventBridge custom events"]["quantity"] == 1


def test_cost_command_without_volume_or_window_exits_2(sluice: Invoke, tmp_path: Path) -> None:
    log = tmp_path / "f.log"
    log.write_text(_report(100, 128))

    result = sluice("cost", "--logs", str(log))

    assert result.exit_code == 2
    assert "--files N --gb G" in result.stderr


def test_cost_command_with_no_report_lines_exits_2(sluice: Invoke, tmp_path: Path) -> None:
    log = tmp_path / "f.log"
    log.write_text("START RequestId: r Version: $LATEST\n")

    result = sluice("cost", "--logs", str(log), "--files", "1", "--gb", "1")

    assert result.exit_code == 2
    assert "no REPORT lines" in result.stderr


def test_cost_command_bad_usage_file_exits_2(sluice: Invoke, tmp_path: Path) -> None:
    log = tmp_path / "f.log"
    log.write_text(_report(100, 128))
    usage = tmp_path / "usage.json"
    usage.write_text('{"lambda_gb": 3}')

    result = sluice("cost", "--logs", str(log), "--files", "1", "--gb", "1", "--usage", str(usage))

    assert result.exit_code == 2
    assert "unknown usage figure" in result.stderr
