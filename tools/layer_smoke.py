"""Smoke-run the data path from a built layer tree, with nothing else importable.

Run as `python -I -S -B tools/layer_smoke.py <tree>` (tests/policy/test_layer.py does): `-I -S`
leave only the standard library on sys.path, this script puts the tree first, and every import
below must then come from the tree. Prints one JSON object with what it measured.
"""

from __future__ import annotations

import sys


def main(tree: str) -> dict[str, object]:
    """Import and exercise the layer's contents.

    Args:
        tree: the layer's `python/` directory (built for this interpreter's platform).

    Returns:
        Facts for the caller to assert on.

    Raises:
        AssertionError / ImportError: the tree is not self-sufficient or the data path fails.
    """
    sys.path.insert(0, tree)
    leaks = [p for p in sys.path if "site-packages" in p or "dist-packages" in p]
    assert not leaks, f"sys.path leaks packages from outside the layer: {leaks}"

    import importlib
    import io
    import os
    import pkgutil

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds
    import pyarrow.ipc as ipc
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    csv = b"order_id,country,amount\n1,DE,10.5\n2,FR,3.25\n2,FR,3.25\n3,DE,7\n"
    table = pcsv.read_csv(io.BytesIO(csv))
    total = pc.sum(table["amount"]).as_py()
    deduped = table.group_by(["order_id", "country", "amount"]).aggregate([])
    germany = table.filter(pc.equal(table["country"], "DE"))

    parquet = io.BytesIO()
    pq.write_table(deduped, parquet, compression="zstd")
    back = pq.read_table(io.BytesIO(parquet.getvalue()))

    stream = io.BytesIO()
    with ipc.new_stream(stream, table.schema) as writer:
        writer.write_table(table)
    staged = ipc.open_stream(io.BytesIO(stream.getvalue())).read_all()

    jsonl = pjson.read_json(io.BytesIO(b'{"a": 1}\n{"a": 2}\n'))
    dataset_rows = ds.dataset(back).count_rows()

    imported: list[str] = []
    for package_name in ("contracts", "sluice_shared"):
        package = importlib.import_module(package_name)
        imported.append(package_name)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            importlib.import_module(module.name)
            imported.append(module.name)

    from contracts.datasets.loader import load_contract

    orders = load_contract("orders")

    import aioboto3
    import aws_xray_sdk.core
    import boto3
    import orjson
    import pydantic
    import tenacity
    import yaml
    from aws_lambda_powertools import Logger, Metrics, Tracer

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    session = boto3.session.Session(
        aws_access_key_id="layer", aws_secret_access_key="smoke", region_name="us-east-1"
    )
    clients = [
        session.client(name).meta.service_model.service_name
        for name in ("s3", "sqs", "dynamodb", "events", "stepfunctions", "ssm")
    ]
    third_party = [
        m.__name__ for m in (aioboto3, aws_xray_sdk.core, orjson, pydantic, tenacity, yaml)
    ] + [Logger.__name__, Metrics.__name__, Tracer.__name__]

    outside = sorted(
        name
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None) and "site-packages" in str(module.__file__)
    )
    return {
        "pyarrow": pa.__version__,
        "pyarrow_file": pa.__file__,
        "rows": table.num_rows,
        "total": total,
        "deduped_rows": deduped.num_rows,
        "germany_rows": germany.num_rows,
        "parquet_rows": back.num_rows,
        "staged_rows": staged.num_rows,
        "jsonl_rows": jsonl.num_rows,
        "dataset_rows": dataset_rows,
        "imported": imported,
        "orders_contract": orders.name,
        "clients": clients,
        "third_party": third_party,
        "numpy_loaded": "numpy" in sys.modules,
        "pandas_loaded": "pandas" in sys.modules,
        "modules_from_outside": outside,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(sys.argv[1])))
