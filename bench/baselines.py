"""The benchmark job (bench/job.py) written the way a user of each tool would write it.

Every engine returns (rows written to Parquet, bad rows) so the table shows that they agree.
Checks are generated from the same contract columns as Sluice's validator uses.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench.job import Job
from contracts.datasets import ColumnSpec, ColumnType
from sluice_shared.datapath.schema import contract_schema

# The text forms Sluice's validator accepts (sluice_shared/datapath/checks.py docstring): values
# are never trimmed; timestamps are ISO 8601 with `T` or space, optional fraction and offset
# (naive = UTC); impossible calendar days are rejected by every engine's own date parser.
TS_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$"
)
# Invalid UTF-8: pandas and polars read it lossily (U+FFFD), and the row is then quarantined.
REPLACEMENT = "\ufffd"
INT_PATTERN = r"^[+-]?[0-9]{1,19}$"
FLOAT_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


# ----------------------------------------------------------------------------------------------
# plain Python csv, row by row
# ----------------------------------------------------------------------------------------------


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def run_pycsv(job: Job, csv_path: Path, out_dir: Path, limit: int | None = None) -> dict[str, int]:
    cols = job.columns
    names = [c.name for c in cols]
    regexes = {c.name: re.compile(c.constraints.regex) for c in cols if c.constraints.regex}
    ts_re = re.compile(TS_PATTERN)
    int_re = re.compile(INT_PATTERN)
    float_re = re.compile(FLOAT_PATTERN)
    on, lk_key, lk_cols, prefix = job.lookup
    with job.lookup_csv.open(newline="", encoding="utf-8") as fh:
        lookup = {row[lk_key]: row for row in csv.DictReader(fh)}
    derived_name, left, right = job.multiply
    key_index = names.index(job.key)
    part_index = names.index(job.partition_column)
    seen: set[str] = set()
    schema = contract_schema(job.contract)
    out_fields = [*schema, pa.field(derived_name, pa.float64())]
    out_fields += [pa.field(f"{prefix}{c}", pa.string()) for c in lk_cols]
    out_schema = pa.schema(out_fields)
    buffers: dict[str, list[list[Any]]] = {}
    writers: dict[str, pq.ParquetWriter] = {}
    bad_rows = 0
    rows_out = 0

    def flush(day: str) -> None:
        rows = buffers.pop(day, [])
        if not rows:
            return
        if day not in writers:
            path = out_dir / f"dt={day}" / "part-0.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            writers[day] = pq.ParquetWriter(str(path), out_schema, compression="zstd")
        columns = list(zip(*rows, strict=True))
        writers[day].write_table(pa.table(columns, schema=out_schema))

    bad_path = out_dir / "_bad.csv"
    bad_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        # undecodable bytes become lone surrogates, so the row can be told apart and quarantined
        csv_path.open(newline="", encoding="utf-8", errors="surrogateescape") as fh,
        bad_path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as bad_fh,
    ):
        reader = csv.reader(fh)
        bad = csv.writer(bad_fh)
        next(reader)
        for number, record in enumerate(reader, start=1):
            if limit is not None and number > limit:
                break
            reason = None
            values: list[Any] = []
            if len(record) != len(cols):
                reason = "field_count"
            elif any(_has_surrogate(text) for text in record):
                reason = "invalid_utf8"
            else:
                for col, text in zip(cols, record, strict=True):
                    value: Any
                    if text == "":
                        if not col.nullable:
                            reason = f"{col.name}:null"
                            break
                        values.append(None)
                        continue
                    if col.type is ColumnType.INT64:
                        if not int_re.match(text):
                            reason = f"{col.name}:type"
                            break
                        value = int(text)
                    elif col.type is ColumnType.FLOAT64:
                        if not float_re.match(text):
                            reason = f"{col.name}:type"
                            break
                        value = float(text)
                    elif col.type is ColumnType.TIMESTAMP:
                        if not ts_re.match(text):
                            reason = f"{col.name}:type"
                            break
                        try:
                            value = dt.datetime.fromisoformat(text)
                        except ValueError:
                            reason = f"{col.name}:type"
                            break
                        if value.tzinfo is None:
                            value = value.replace(tzinfo=dt.UTC)
                    else:
                        value = text
                    c = col.constraints
                    if (c.min is not None and value < c.min) or (
                        c.max is not None and value > c.max
                    ):
                        reason = f"{col.name}:range"
                        break
                    if c.enum is not None and value not in c.enum:
                        reason = f"{col.name}:enum"
                        break
                    if c.max_length is not None and len(text) > c.max_length:
                        reason = f"{col.name}:max_length"
                        break
                    if col.name in regexes and not regexes[col.name].search(text):
                        reason = f"{col.name}:regex"
                        break
                    values.append(value)
            if reason is None:
                key = values[key_index]
                if key in seen:
                    reason = "duplicate_primary_key"
                else:
                    seen.add(key)
            if reason is not None:
                bad_rows += 1
                bad.writerow([number, reason, *record])
                continue
            row = dict(zip(names, values, strict=True))
            lhs, rhs = row[left], row[right]
            values.append(None if lhs is None or rhs is None else lhs * rhs)
            match = lookup.get(row[on]) if row[on] is not None else None
            values.extend(match[c] if match else None for c in lk_cols)
            day = values[part_index].astimezone(dt.UTC).date().isoformat()
            buffers.setdefault(day, []).append(values)
            rows_out += 1
            if len(buffers[day]) >= 65_536:
                flush(day)
    for day in sorted(buffers):
        flush(day)
    for writer in writers.values():
        writer.close()
    return {"rows_out": rows_out, "rows_bad": bad_rows}


# ----------------------------------------------------------------------------------------------
# pandas
# ----------------------------------------------------------------------------------------------


def run_pandas(job: Job, csv_path: Path, out_dir: Path) -> dict[str, int]:
    import numpy as np
    import pandas as pd

    cols = job.columns
    names = [c.name for c in cols]
    # Rows with too few fields come back padded with NaN (the not-null checks catch them); rows
    # with too many are skipped by the parser with one warning line each, counted as bad.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = pd.read_csv(
            csv_path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            on_bad_lines="warn",
            encoding_errors="replace",
        )
    skipped = sum(str(w.message).count("Skipping line") for w in caught)
    typed: dict[str, Any] = {}
    conditions: list[Any] = []
    reasons: list[str] = []
    for col in cols:
        s = raw[col.name]
        present = s.notna()
        conditions.append(present & s.str.contains(REPLACEMENT, regex=False).fillna(False))
        reasons.append("invalid_utf8")
        if not col.nullable:
            conditions.append(~present)
            reasons.append(f"{col.name}:null")
        if col.type is ColumnType.INT64:
            ok = s.str.fullmatch(INT_PATTERN[1:-1]).fillna(False).astype(bool)
            value = pd.to_numeric(s.where(ok), errors="coerce").astype("Int64")
        elif col.type is ColumnType.FLOAT64:
            ok = s.str.fullmatch(FLOAT_PATTERN[1:-1]).fillna(False).astype(bool)
            value = pd.to_numeric(s.where(ok), errors="coerce")
        elif col.type is ColumnType.TIMESTAMP:
            value = pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
            ok = value.notna() & s.str.fullmatch(TS_PATTERN[1:-1]).fillna(False).astype(bool)
        else:
            value, ok = s, present
        conditions.append(present & ~ok)
        reasons.append(f"{col.name}:type")
        c = col.constraints
        if c.min is not None:
            conditions.append(present & ok & (value < c.min))
            reasons.append(f"{col.name}:range")
        if c.max is not None:
            conditions.append(present & ok & (value > c.max))
            reasons.append(f"{col.name}:range")
        if c.enum is not None:
            conditions.append(present & ~s.isin(c.enum))
            reasons.append(f"{col.name}:enum")
        if c.max_length is not None:
            conditions.append(present & (s.str.len() > c.max_length))
            reasons.append(f"{col.name}:max_length")
        if c.regex is not None:
            conditions.append(present & ~s.str.contains(c.regex, regex=True).fillna(False))
            reasons.append(f"{col.name}:regex")
        typed[col.name] = value
    reason = pd.Series(
        np.select([np.asarray(c, dtype=bool) for c in conditions], reasons, default=""),
        index=raw.index,
    )
    df = pd.DataFrame(typed, columns=names)
    valid = df[reason == ""]
    dup = valid[job.key].duplicated(keep="first")
    bad = raw[reason != ""].assign(reason=reason[reason != ""])
    dups = raw.loc[valid.index[dup.to_numpy()]].assign(reason="duplicate_primary_key")
    good = valid[~dup]
    derived_name, left, right = job.multiply
    good = good.assign(**{derived_name: good[left].astype("float64") * good[right]})
    on, lk_key, lk_cols, prefix = job.lookup
    lookup = pd.read_csv(job.lookup_csv, dtype=str, keep_default_na=False)
    lookup = lookup[[lk_key, *lk_cols]].rename(columns={c: f"{prefix}{c}" for c in lk_cols})
    good = good.merge(lookup, how="left", left_on=on, right_on=lk_key, validate="many_to_one")
    if lk_key not in names:
        good = good.drop(columns=[lk_key])
    good["dt"] = good[job.partition_column].dt.strftime("%Y-%m-%d")
    out_dir.mkdir(parents=True, exist_ok=True)
    good.to_parquet(out_dir, partition_cols=["dt"], compression="zstd", index=False)
    all_bad = pd.concat([bad, dups])
    all_bad.to_csv(out_dir / "_bad.csv", index=False)
    return {"rows_out": len(good), "rows_bad": len(all_bad) + skipped}


# ----------------------------------------------------------------------------------------------
# polars
# ----------------------------------------------------------------------------------------------


def run_polars(job: Job, csv_path: Path, out_dir: Path) -> dict[str, int]:
    import polars as pl

    cols = job.columns
    lf = pl.scan_csv(
        csv_path,
        infer_schema=False,
        null_values=[""],
        truncate_ragged_lines=True,
        row_index_name="__row",
        encoding="utf8-lossy",
    )
    checked = _polars_checked(job, lf).collect()
    valid = checked.filter(pl.col("__reason").is_null())
    first = valid.get_column(f"__t_{job.key}").is_first_distinct()
    bad = pl.concat(
        [
            checked.filter(pl.col("__reason").is_not_null()).select(
                "__row", "__reason", *[c.name for c in cols]
            ),
            valid.filter(~first)
            .with_columns(pl.lit("duplicate_primary_key").alias("__reason"))
            .select("__row", "__reason", *[c.name for c in cols]),
        ]
    )
    good = valid.filter(first).select([pl.col(f"__t_{c.name}").alias(c.name) for c in cols])
    derived_name, left, right = job.multiply
    on, lk_key, lk_cols, prefix = job.lookup
    lookup = pl.read_csv(job.lookup_csv, infer_schema=False).select(
        pl.col(lk_key).alias("__lk"), *[pl.col(c).alias(f"{prefix}{c}") for c in lk_cols]
    )
    good = (
        good.with_columns((pl.col(left).cast(pl.Float64) * pl.col(right)).alias(derived_name))
        .join(lookup, left_on=on, right_on="__lk", how="left", maintain_order="left")
        .with_columns(pl.col(job.partition_column).dt.date().alias("dt"))
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    good.write_parquet(out_dir, compression="zstd", partition_by="dt")
    bad.write_csv(out_dir / "_bad.csv")
    return {"rows_out": good.height, "rows_bad": bad.height}


# ----------------------------------------------------------------------------------------------
# DuckDB
# ----------------------------------------------------------------------------------------------


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _duckdb_columns(cols: list[ColumnSpec]) -> tuple[list[str], list[str]]:
    """The typed select list (`TRY_CAST(...) AS "col"`) and the `WHEN ... THEN 'col:reason'`
    arms that name each bad row's first failed check, shared by both DuckDB forms."""
    sql_types = {
        ColumnType.INT64: "BIGINT",
        ColumnType.FLOAT64: "DOUBLE",
        ColumnType.TIMESTAMP: "TIMESTAMPTZ",
    }
    typed = []
    cases = []
    for col in cols:
        name = f'"{col.name}"'
        if col.type in sql_types:
            value = f"TRY_CAST({name} AS {sql_types[col.type]})"
            pattern = {
                ColumnType.INT64: INT_PATTERN,
                ColumnType.FLOAT64: FLOAT_PATTERN,
                ColumnType.TIMESTAMP: TS_PATTERN,
            }[col.type]
            ok = f"(regexp_matches({name}, {_sql_str(pattern)}) AND {value} IS NOT NULL)"
        else:
            value, ok = name, "TRUE"
        if not col.nullable:
            cases.append(f"WHEN {name} IS NULL THEN '{col.name}:null'")
        cases.append(f"WHEN {name} IS NOT NULL AND NOT {ok} THEN '{col.name}:type'")
        c = col.constraints
        if c.min is not None:
            cases.append(f"WHEN {value} < {c.min} THEN '{col.name}:range'")
        if c.max is not None:
            cases.append(f"WHEN {value} > {c.max} THEN '{col.name}:range'")
        if c.enum is not None:
            options = ", ".join(_sql_str(v) for v in c.enum)
            cases.append(f"WHEN {name} NOT IN ({options}) THEN '{col.name}:enum'")
        if c.max_length is not None:
            cases.append(f"WHEN length({name}) > {c.max_length} THEN '{col.name}:max_length'")
        if c.regex is not None:
            cases.append(
                f"WHEN NOT regexp_matches({name}, {_sql_str(c.regex)}) THEN '{col.name}:regex'"
            )
        typed.append(f"{value} AS {name}")
    return typed, cases


def run_duckdb(job: Job, csv_path: Path, out_dir: Path, threads: int) -> dict[str, int]:
    import duckdb

    cols = job.columns
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute("SET TimeZone='UTC'")
    con.execute("SET preserve_insertion_order=true")
    typed, cases = _duckdb_columns(cols)
    raw_cols = ", ".join(f'"{c.name}"' for c in cols)
    reason = "CASE " + " ".join(cases) + " END"
    con.execute(
        f"""
        CREATE TEMP TABLE checked AS
        SELECT row_number() OVER () AS __row, {reason} AS __reason, {raw_cols}
        FROM read_csv({_sql_str(str(csv_path))}, all_varchar=true, header=true, nullstr='',
                      ignore_errors=true, store_rejects=true)
        """
    )
    derived_name, left, right = job.multiply
    on, lk_key, lk_cols, prefix = job.lookup
    lk_select = ", ".join(f'l."{c}" AS "{prefix}{c}"' for c in lk_cols)
    con.execute(
        f"""
        CREATE TEMP TABLE ranked AS
        SELECT __row, __reason,
               CASE WHEN __reason IS NULL
                    THEN row_number() OVER (PARTITION BY "{job.key}", __reason IS NULL
                                            ORDER BY __row)
               END AS __copy
        FROM checked
        """
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"""
        COPY (
            SELECT {", ".join(typed)},
                   CAST("{left}" AS BIGINT) * CAST("{right}" AS DOUBLE) AS "{derived_name}",
                   {lk_select},
                   CAST(TRY_CAST("{job.partition_column}" AS TIMESTAMPTZ) AS DATE) AS dt
            FROM checked c JOIN ranked r USING (__row)
            LEFT JOIN read_csv({_sql_str(str(job.lookup_csv))}, all_varchar=true) l
                   ON c."{on}" = l."{lk_key}"
            WHERE r.__copy = 1
            ORDER BY c.__row
        ) TO {_sql_str(str(out_dir))} (FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd)
        """
    )
    good_row = con.execute("SELECT count(*) FROM ranked WHERE __copy = 1").fetchone()
    con.execute(
        f"""
        COPY (
            SELECT c.*, coalesce(c.__reason, 'duplicate_primary_key') AS reason
            FROM checked c JOIN ranked r USING (__row)
            WHERE r.__copy IS DISTINCT FROM 1
        ) TO {_sql_str(str(out_dir / "_bad.csv"))} (FORMAT csv)
        """
    )
    bad_row = con.execute("SELECT count(*) FROM ranked WHERE __copy IS DISTINCT FROM 1").fetchone()
    rejects_row = con.execute(
        "SELECT count(DISTINCT (scan_id, file_id, line)) FROM reject_errors"
    ).fetchone()
    assert good_row is not None
    assert bad_row is not None
    assert rejects_row is not None
    return {"rows_out": good_row[0], "rows_bad": bad_row[0] + rejects_row[0]}


# ----------------------------------------------------------------------------------------------
# the floor: pyarrow CSV read alone + Parquet write alone (on a clean copy of the input)
# ----------------------------------------------------------------------------------------------


def run_floor(job: Job, csv_path: Path, out_dir: Path) -> dict[str, Any]:
    import time

    schema = contract_schema(job.contract)
    started = time.perf_counter()
    table = pacsv.read_csv(
        csv_path,
        read_options=pacsv.ReadOptions(block_size=1 << 20),
        # the generated notes hold quoted newlines, as real exports do
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=schema, null_values=[""], strings_can_be_null=True
        ),
    )
    read_s = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pq.write_table(table, out_dir / "all.parquet", compression="zstd", use_dictionary=False)
    write_s = time.perf_counter() - started
    return {"rows_out": table.num_rows, "rows_bad": 0, "read_s": read_s, "write_s": write_s}


# ----------------------------------------------------------------------------------------------
# polars streaming and single-pass DuckDB: the same job in each tool's strongest form
# ----------------------------------------------------------------------------------------------


def _polars_checked(job: Job, lf: Any) -> Any:
    """`lf` with the typed columns (`__t_<name>`) and the first failing check (`__reason`)."""
    import polars as pl

    typed: list[Any] = []
    checks: list[Any] = []
    for col in job.columns:
        s = pl.col(col.name)
        present = s.is_not_null()
        checks.append((present & s.str.contains(REPLACEMENT, literal=True), "invalid_utf8"))
        if not col.nullable:
            checks.append((~present, f"{col.name}:null"))
        if col.type is ColumnType.INT64:
            value = s.str.strip_chars_start("+").cast(pl.Int64, strict=False)
            ok = s.str.contains(INT_PATTERN) & value.is_not_null()
        elif col.type is ColumnType.FLOAT64:
            value = s.cast(pl.Float64, strict=False)
            ok = s.str.contains(FLOAT_PATTERN) & value.is_not_null()
        elif col.type is ColumnType.TIMESTAMP:
            value = s.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
            ok = s.str.contains(TS_PATTERN) & value.is_not_null()
        else:
            value, ok = s, present
        checks.append((present & ~ok, f"{col.name}:type"))
        c = col.constraints
        if c.min is not None:
            checks.append((present & ok & (value < c.min), f"{col.name}:range"))
        if c.max is not None:
            checks.append((present & ok & (value > c.max), f"{col.name}:range"))
        if c.enum is not None:
            checks.append((present & ~s.is_in(c.enum), f"{col.name}:enum"))
        if c.max_length is not None:
            checks.append((present & (s.str.len_chars() > c.max_length), f"{col.name}:max_length"))
        if c.regex is not None:
            checks.append((present & ~s.str.contains(c.regex), f"{col.name}:regex"))
        typed.append(value.alias(f"__t_{col.name}"))
    reason = pl.coalesce([pl.when(cond).then(pl.lit(text)) for cond, text in checks])
    return lf.with_columns([*typed, reason.alias("__reason")])


def run_polars_streaming(job: Job, csv_path: Path, out_dir: Path) -> dict[str, int]:
    """One lazy plan on polars' streaming engine: both outputs are sinks of one query
    (`collect_all`), the good rows to a partitioned Parquet target (`PartitionBy`)."""
    import polars as pl

    cols = job.columns
    lf = pl.scan_csv(
        csv_path,
        infer_schema=False,
        null_values=[""],
        truncate_ragged_lines=True,
        row_index_name="__row",
        encoding="utf8-lossy",
    )
    checked = _polars_checked(job, lf)
    valid = checked.filter(pl.col("__reason").is_null()).with_columns(
        pl.col(f"__t_{job.key}").is_first_distinct().alias("__first")
    )
    raw = ["__row", "__reason", *[c.name for c in cols]]
    bad = pl.concat(
        [
            checked.filter(pl.col("__reason").is_not_null()).select(raw),
            valid.filter(~pl.col("__first"))
            .with_columns(pl.lit("duplicate_primary_key").alias("__reason"))
            .select(raw),
        ]
    )
    derived_name, left, right = job.multiply
    on, lk_key, lk_cols, prefix = job.lookup
    lookup = pl.scan_csv(job.lookup_csv, infer_schema=False).select(
        pl.col(lk_key).alias("__lk"), *[pl.col(c).alias(f"{prefix}{c}") for c in lk_cols]
    )
    good = (
        valid.filter(pl.col("__first"))
        .select([pl.col(f"__t_{c.name}").alias(c.name) for c in cols])
        .with_columns((pl.col(left).cast(pl.Float64) * pl.col(right)).alias(derived_name))
        .join(lookup, left_on=on, right_on="__lk", how="left", maintain_order="left")
        .with_columns(pl.col(job.partition_column).dt.date().alias("dt"))
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    bad_path = out_dir / "_bad.csv"
    good_dir = out_dir / "good"
    pl.collect_all(
        [
            good.sink_parquet(pl.PartitionBy(good_dir, key="dt"), compression="zstd", lazy=True),
            bad.sink_csv(bad_path, lazy=True),
        ],
        engine="streaming",
    )
    # the counts check: read back what was written (Parquet footers; the bad rows' CSV)
    rows_out = pl.scan_parquet(good_dir / "**" / "*.parquet").select(pl.len()).collect().item()
    rows_bad = pl.scan_csv(bad_path, infer_schema=False).select(pl.len()).collect().item()
    return {"rows_out": int(rows_out), "rows_bad": int(rows_bad)}


def run_duckdb_single(job: Job, csv_path: Path, out_dir: Path, threads: int) -> dict[str, int]:
    """One `COPY … (PARTITION_BY)` straight from `read_csv` for the good rows (no temp table,
    no `ORDER BY`), and one `COPY` of the bad rows; the dedupe is a window in each."""
    import duckdb

    cols = job.columns
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute("SET TimeZone='UTC'")
    typed, cases = _duckdb_columns(cols)
    raw_cols = ", ".join(f'"{c.name}"' for c in cols)
    reason = "CASE " + " ".join(cases) + " END"
    # __copy: 1 for the first valid row of a key (in file order), NULL for an invalid row
    checked = f"""
        SELECT *, CASE WHEN __reason IS NULL
                       THEN row_number() OVER (PARTITION BY "{job.key}", __reason IS NULL
                                               ORDER BY __row)
                  END AS __copy
        FROM (
            SELECT row_number() OVER () AS __row, {reason} AS __reason, {raw_cols}
            FROM read_csv({_sql_str(str(csv_path))}, all_varchar=true, header=true,
                          nullstr='', ignore_errors=true, store_rejects=true)
        )
    """
    derived_name, left, right = job.multiply
    on, lk_key, lk_cols, prefix = job.lookup
    lk_select = ", ".join(f'l."{c}" AS "{prefix}{c}"' for c in lk_cols)
    out_dir.mkdir(parents=True, exist_ok=True)
    good_row = con.execute(
        f"""
        COPY (
            SELECT {", ".join(typed)},
                   CAST("{left}" AS BIGINT) * CAST("{right}" AS DOUBLE) AS "{derived_name}",
                   {lk_select},
                   CAST(TRY_CAST("{job.partition_column}" AS TIMESTAMPTZ) AS DATE) AS dt
            FROM ({checked}) c
            LEFT JOIN read_csv({_sql_str(str(job.lookup_csv))}, all_varchar=true) l
                   ON c."{on}" = l."{lk_key}"
            WHERE c.__copy = 1
        ) TO {_sql_str(str(out_dir / "good"))} (FORMAT parquet, PARTITION_BY (dt),
                                                 COMPRESSION zstd)
        """
    ).fetchone()
    bad_row = con.execute(
        f"""
        COPY (
            SELECT __row, coalesce(__reason, 'duplicate_primary_key') AS reason, {raw_cols}
            FROM ({checked})
            WHERE __copy IS DISTINCT FROM 1
        ) TO {_sql_str(str(out_dir / "_bad.csv"))} (FORMAT csv)
        """
    ).fetchone()
    # both scans saw the parser's rejects: count each line of the file once
    rejects_row = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()
    assert good_row is not None
    assert bad_row is not None
    assert rejects_row is not None
    return {"rows_out": good_row[0], "rows_bad": bad_row[0] + rejects_row[0]}


# ----------------------------------------------------------------------------------------------
# JSON Lines (sensor_readings): DuckDB and the floor
# ----------------------------------------------------------------------------------------------

# DuckDB's json_type names per contract type: what a JSON value must already be (a JSON string
# "12.5" is a type mismatch for a float64 column, as in Sluice's validator).
_JSON_TYPES = {
    ColumnType.STRING: ("VARCHAR",),
    ColumnType.TIMESTAMP: ("VARCHAR",),
    ColumnType.FLOAT64: ("DOUBLE", "UBIGINT", "BIGINT", "HUGEINT"),
    ColumnType.INT64: ("UBIGINT", "BIGINT"),
    ColumnType.BOOL: ("BOOLEAN",),
}


def run_duckdb_jsonl(
    job: Job, jsonl_path: Path, out_dir: Path, threads: int, max_depth: int
) -> dict[str, int]:
    """The JSONL job in DuckDB: each line read as text (`read_csv` with one column, so a line
    that is not JSON, or not UTF-8, is a row to count rather than a failed read), checked with
    the JSON functions, deduped with a window, joined, one `COPY … (PARTITION_BY)`, bad rows
    to CSV. Nesting depth is the count of `{`/`[` in the line: exact for these records (no
    bracket inside a string), an approximation in general."""
    import duckdb

    contract = job.contract
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute("SET TimeZone='UTC'")
    cases = [
        "WHEN j IS NULL THEN 'invalid_json'",
        "WHEN json_type(j) <> 'OBJECT' THEN 'not_an_object'",
        "WHEN length(line) - length(regexp_replace(line, '[{\\[]', '', 'g')) "
        f"> {max_depth} THEN 'too_deep'",
    ]
    typed = []
    for col in job.columns:
        path = _sql_str(f"$.{col.source or col.name}")
        kind = f"json_type(j, {path})"
        text = f"(j ->> {path})"
        allowed = ", ".join(_sql_str(t) for t in _JSON_TYPES[col.type])
        if col.type is ColumnType.TIMESTAMP:
            value = f"TRY_CAST({text} AS TIMESTAMPTZ)"
            ok = f"{kind} IN ({allowed}) AND regexp_matches({text}, {_sql_str(TS_PATTERN)})"
            ok += f" AND {value} IS NOT NULL"
        elif col.type is ColumnType.FLOAT64:
            value, ok = f"CAST({text} AS DOUBLE)", f"{kind} IN ({allowed})"
        elif col.type is ColumnType.INT64:
            value, ok = f"CAST({text} AS BIGINT)", f"{kind} IN ({allowed})"
        elif col.type is ColumnType.BOOL:
            value, ok = f"CAST({text} AS BOOLEAN)", f"{kind} IN ({allowed})"
        else:
            value, ok = text, f"{kind} IN ({allowed})"
        present = f"coalesce({kind}, 'NULL') <> 'NULL'"
        if not col.nullable:
            cases.append(f"WHEN NOT {present} THEN '{col.name}:null'")
        cases.append(f"WHEN {present} AND NOT ({ok}) THEN '{col.name}:type'")
        c = col.constraints
        if c.min is not None:
            cases.append(f"WHEN {present} AND {value} < {c.min} THEN '{col.name}:range'")
        if c.max is not None:
            cases.append(f"WHEN {present} AND {value} > {c.max} THEN '{col.name}:range'")
        if c.enum is not None:
            options = ", ".join(_sql_str(v) for v in c.enum)
            cases.append(f"WHEN {present} AND {text} NOT IN ({options}) THEN '{col.name}:enum'")
        if c.max_length is not None:
            cases.append(
                f"WHEN {present} AND length({text}) > {c.max_length} THEN '{col.name}:max_length'"
            )
        if c.regex is not None:
            cases.append(
                f"WHEN {present} AND NOT regexp_matches({text}, {_sql_str(c.regex)}) "
                f"THEN '{col.name}:regex'"
            )
        typed.append(f'CASE WHEN {present} THEN {value} END AS "{col.name}"')
    reason = "CASE " + " ".join(cases) + " END"
    keys = ", ".join(f'"{k}"' for k in contract.primary_key)
    (part,) = contract.partition_by
    (lk,) = contract.transform.lookups
    derived = []
    for d in contract.transform.derived:
        if d.name in contract.transform.drop:
            continue
        (arg,) = d.args
        if d.op == "date_of":
            derived.append(f'CAST("{arg}" AS DATE) AS "{d.name}"')
        elif d.op == "round":
            derived.append(f'round("{arg}", {d.digits}) AS "{d.name}"')
        else:
            raise ValueError(f"derived op {d.op!r} is not in this baseline")
    lk_select = ", ".join(f'l."{c}" AS "{lk.prefix}{c}"' for c in lk.columns)
    lines_csv = (
        f"read_csv({_sql_str(str(jsonl_path))}, columns={{'line': 'VARCHAR'}}, header=false, "
        "delim=E'\\x1f', quote='', escape='', ignore_errors=true, store_rejects=true)"
    )
    checked = f"""
        SELECT * FROM (
            SELECT __row, __reason, line, {", ".join(typed)}
            FROM (SELECT __row, line, j, {reason} AS __reason
                  FROM (SELECT row_number() OVER () AS __row, line,
                               CASE WHEN json_valid(line) THEN line END AS j
                        FROM {lines_csv}))
        )
    """
    con.execute(
        f"""
        CREATE TEMP TABLE checked AS
        SELECT *, CASE WHEN __reason IS NULL
                       THEN row_number() OVER (PARTITION BY {keys}, __reason IS NULL
                                               ORDER BY __row)
                  END AS __copy
        FROM ({checked})
        """
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    names = ", ".join(f'c."{c.name}"' for c in job.columns)
    good_row = con.execute(
        f"""
        COPY (
            SELECT {names}, {", ".join(derived)}, {lk_select},
                   CAST("{part.column}" AS DATE) AS dt
            FROM checked c
            LEFT JOIN read_csv({_sql_str(str(job.lookup_csv))}, all_varchar=true) l
                   ON c."{lk.column}" = l."{lk.key}"
            WHERE c.__copy = 1
        ) TO {_sql_str(str(out_dir / "good"))} (FORMAT parquet, PARTITION_BY (dt),
                                                 COMPRESSION zstd)
        """
    ).fetchone()
    bad_row = con.execute(
        f"""
        COPY (
            SELECT __row, coalesce(__reason, 'duplicate_primary_key') AS reason, line
            FROM checked WHERE __copy IS DISTINCT FROM 1
        ) TO {_sql_str(str(out_dir / "_bad.csv"))} (FORMAT csv)
        """
    ).fetchone()
    rejects_row = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()
    assert good_row is not None
    assert bad_row is not None
    assert rejects_row is not None
    return {"rows_out": good_row[0], "rows_bad": bad_row[0] + rejects_row[0]}


def run_floor_jsonl(job: Job, jsonl_path: Path, out_dir: Path) -> dict[str, Any]:
    """The JSONL floor: pyarrow `read_json` typed by the contract + one Parquet write, on a
    clean copy (no checks, no dedupe, no join)."""
    import time

    import pyarrow.json as pajson

    schema = contract_schema(job.contract)
    sources = {c.name: c.source or c.name for c in job.columns}
    read_schema = pa.schema([pa.field(sources[f.name], f.type) for f in schema])
    started = time.perf_counter()
    table = pajson.read_json(
        jsonl_path,
        read_options=pajson.ReadOptions(block_size=1 << 20),
        parse_options=pajson.ParseOptions(
            explicit_schema=read_schema, unexpected_field_behavior="ignore"
        ),
    )
    read_s = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pq.write_table(table, out_dir / "all.parquet", compression="zstd", use_dictionary=False)
    write_s = time.perf_counter() - started
    return {"rows_out": table.num_rows, "rows_bad": 0, "read_s": read_s, "write_s": write_s}
