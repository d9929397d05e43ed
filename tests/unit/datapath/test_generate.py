"""Sample data generator: deterministic files whose ground truth the validator confirms."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from contracts.datasets.loader import load_contract
from sluice.generate import GroundTruth, generate, main, parse_size
from sluice_shared.datapath.validate import validate_file
from sluice_shared.limits import Limits


def _validate(
    path: Path, dataset: str, out: Path
) -> tuple[dict[str, int], Counter[tuple[object, ...]]]:
    contract = load_contract(dataset)
    result = validate_file(path, contract, out, limits=Limits())
    assert result.rejection is None, result.rejection
    keys: Counter[tuple[object, ...]] = Counter()
    for staged in result.staged.values():
        table = pa.ipc.open_stream(staged).read_all()
        columns = [table.column(k).to_pylist() for k in contract.primary_key]
        keys.update(zip(*columns, strict=True))
    return result.reasons, keys


@pytest.mark.parametrize(("dataset", "name"), [("orders", "o.csv"), ("sensor_readings", "s.jsonl")])
def test_generate_ground_truth_matches_what_validate_finds(
    tmp_path: Path, dataset: str, name: str
) -> None:
    # GIVEN a generated file with bad rows of every kind and duplicates
    truth = generate(
        dataset, tmp_path / name, rows=5000, bad_ratio=0.09, duplicate_ratio=0.02, seed=11
    )
    assert truth.rows_total == 5000
    assert truth.rows_bad_total == 450
    assert len(truth.rows_bad) == 9  # every reason code of the dataset is represented
    # WHEN it is validated
    reasons, keys = _validate(tmp_path / name, dataset, tmp_path / "out")
    # THEN the reasons, duplicate copies and distinct good keys are exactly the truth
    assert reasons == truth.rows_bad
    assert sum(keys.values()) - len(keys) == truth.rows_duplicate
    assert len(keys) == truth.expected_good_keys


def test_generate_is_deterministic_by_seed(tmp_path: Path) -> None:
    generate("orders", tmp_path / "a.csv", rows=2000, bad_ratio=0.1, seed=5)
    generate("orders", tmp_path / "b.csv", rows=2000, bad_ratio=0.1, seed=5)
    generate("orders", tmp_path / "c.csv", rows=2000, bad_ratio=0.1, seed=6)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_generate_gzip_holds_the_same_bytes(tmp_path: Path) -> None:
    plain = generate("sensor_readings", tmp_path / "s.jsonl", rows=1000, bad_ratio=0.05, seed=2)
    zipped = generate(
        "sensor_readings", tmp_path / "s.jsonl.gz", rows=1000, bad_ratio=0.05, seed=2, gzip=True
    )
    assert plain == zipped
    raw = gzip.decompress((tmp_path / "s.jsonl.gz").read_bytes())
    assert raw == (tmp_path / "s.jsonl").read_bytes()


def test_generate_by_size_stops_once_reached(tmp_path: Path) -> None:
    truth = generate("orders", tmp_path / "o.csv", size_bytes=300_000)
    size = (tmp_path / "o.csv").stat().st_size
    assert truth.bytes_written == size
    assert size >= 300_000
    assert truth.rows_total > 0


def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        generate("nope", tmp_path / "x", rows=1)
    with pytest.raises(ValueError, match="exactly one"):
        generate("orders", tmp_path / "x", rows=1, size_bytes=10)
    with pytest.raises(ValueError, match="fractions"):
        generate("orders", tmp_path / "x", rows=1, bad_ratio=0.8, duplicate_ratio=0.5)


def test_ground_truth_json_round_trip() -> None:
    truth = GroundTruth("orders", 10, {"too_long": 2}, 1, 7, 1234, 3)
    assert GroundTruth.from_json(truth.to_json()) == truth


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2_000_000_000),
        ("200MB", 200_000_000),
        ("1GiB", 2**30),
        ("512", 512),
        ("1.5kb", 1500),
    ],
)
def test_parse_size_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_generate_cli_writes_file_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.csv"
    truth_path = tmp_path / "o.csv.truth.json"
    code = main(
        [
            "orders",
            str(out),
            "--rows",
            "300",
            "--bad-ratio",
            "0.1",
            "--dup-ratio",
            "0.05",
            "--seed",
            "9",
            "--truth",
            str(truth_path),
        ]
    )
    assert code == 0
    truth = GroundTruth.from_json(truth_path.read_bytes())
    assert truth.rows_total == 300
    assert truth.rows_bad_total == 30
    assert truth.rows_duplicate == 15
    assert '"rows_total": 300' in capsys.readouterr().out


def test_generate_gzip_bytes_are_reproducible(tmp_path: Path) -> None:
    generate("orders", tmp_path / "a.csv.gz", rows=500, seed=1, gzip=True)
    generate("orders", tmp_path / "b.csv.gz", rows=500, seed=1, gzip=True)
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()


SAMPLES = Path(__file__).resolve().parents[3] / "samples"


@pytest.mark.parametrize(
    ("dataset", "name"),
    [
        ("orders", "orders-2024-03-01.csv"),
        ("orders", "orders-2024-03-02.csv.gz"),
        ("sensor_readings", "readings-2024-03-01.jsonl"),
    ],
)
def test_committed_samples_match_their_truth(tmp_path: Path, dataset: str, name: str) -> None:
    sample = SAMPLES / dataset / name
    truth = GroundTruth.from_json((sample.parent / f"{name}.truth.json").read_bytes())
    assert truth.rows_bad_total > 0
    assert truth.rows_duplicate > 0
    reasons, keys = _validate(sample, dataset, tmp_path / "out")
    assert reasons == truth.rows_bad
    assert sum(keys.values()) - len(keys) == truth.rows_duplicate
    assert len(keys) == truth.expected_good_keys
