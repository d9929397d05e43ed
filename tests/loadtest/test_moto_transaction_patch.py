"""The event-path fix to moto's TransactWriteItems (`sluice.local.moto_patches`, patch 4): no
whole-table copy, the same outcome — against moto in-process (`mock_aws`: no network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sluice.local import moto_patches

TABLE = "ledger"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        undo = moto_patches.apply()
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName=TABLE,
                KeySchema=[
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            yield client
        finally:
            undo()


def _backend_table() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE]


def _put(pk: str, sk: str, **attrs: str) -> dict[str, Any]:
    item = {"PK": {"S": pk}, "SK": {"S": sk}}
    item.update({k: {"S": v} for k, v in attrs.items()})
    return {"Put": {"TableName": TABLE, "Item": item}}


def _meta(client: Any, pk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(
        TableName=TABLE, Key={"PK": {"S": pk}, "SK": {"S": "META"}}, ConsistentRead=True
    ).get("Item")
    return found


def test_transaction_cancelled_restores_named_items_without_copying_the_table(
    dynamodb: Any,
) -> None:
    dynamodb.put_item(
        TableName=TABLE, Item={"PK": {"S": "FILE#a"}, "SK": {"S": "META"}, "status": {"S": "OLD"}}
    )
    table_before = _backend_table()
    update_a = {
        "Update": {
            "TableName": TABLE,
            "Key": {"PK": {"S": "FILE#a"}, "SK": {"S": "META"}},
            "UpdateExpression": "SET #s = :new",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":new": {"S": "NEW"}},
        }
    }
    new_step = _put("FILE#a", "STEP#1")
    failing = {
        "ConditionCheck": {
            "TableName": TABLE,
            "Key": {"PK": {"S": "FILE#missing"}, "SK": {"S": "META"}},
            "ConditionExpression": "attribute_exists(PK)",
        }
    }

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[update_a, new_step, failing])

    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _meta(dynamodb, "FILE#a") == {
        "PK": {"S": "FILE#a"},
        "SK": {"S": "META"},
        "status": {"S": "OLD"},
    }
    step = dynamodb.get_item(TableName=TABLE, Key={"PK": {"S": "FILE#a"}, "SK": {"S": "STEP#1"}})
    assert "Item" not in step
    # moto's own rollback swaps in a deep copy of the table; the patch keeps the live table.
    assert _backend_table() is table_before


def test_transaction_succeeding_writes_every_item(dynamodb: Any) -> None:
    dynamodb.transact_write_items(
        TransactItems=[_put("FILE#b", "META", status="PENDING"), _put("FILE#b", "STEP#1")]
    )

    assert _meta(dynamodb, "FILE#b") == {
        "PK": {"S": "FILE#b"},
        "SK": {"S": "META"},
        "status": {"S": "PENDING"},
    }
    assert dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"] == 2


def test_transaction_naming_one_item_twice_is_rejected_and_changes_nothing(dynamodb: Any) -> None:
    dynamodb.put_item(
        TableName=TABLE, Item={"PK": {"S": "FILE#c"}, "SK": {"S": "META"}, "status": {"S": "OLD"}}
    )

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[_put("FILE#c", "META", status="X"), _put("FILE#c", "META", status="Y")]
        )

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert _meta(dynamodb, "FILE#c") == {
        "PK": {"S": "FILE#c"},
        "SK": {"S": "META"},
        "status": {"S": "OLD"},
    }


def test_moto_module_listing_is_read_once() -> None:
    from moto import backends

    undo = moto_patches.apply()
    try:
        first = backends.list_of_moto_modules()
        assert first is backends.list_of_moto_modules()
        assert "dynamodb" in first
        assert "sqs" in first
    finally:
        undo()
