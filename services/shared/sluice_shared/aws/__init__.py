"""aioboto3 adapters for the ports in `sluice_shared.ports`, and the error translation."""

from sluice_shared.aws.clients import client_config, open_aws_deps
from sluice_shared.aws.dynamodb import LEDGER_TABLE_SPEC, DynamoDbLedger, create_ledger_table
from sluice_shared.aws.events import EventBridgePublisher
from sluice_shared.aws.s3 import S3ObjectStore
from sluice_shared.aws.sqs import SqsParker

__all__ = [
    "LEDGER_TABLE_SPEC",
    "DynamoDbLedger",
    "EventBridgePublisher",
    "S3ObjectStore",
    "SqsParker",
    "client_config",
    "create_ledger_table",
    "open_aws_deps",
]
