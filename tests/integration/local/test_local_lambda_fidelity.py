"""Lambda as AWS documents it, through boto3 clients on the local runtime's endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluice.local.errors import ProvisioningError
from sluice.local.runtime import LocalRuntime
from tests.integration.local.conftest import FIXTURES, fixture_options
from tests.processes import free_port


async def test_empty_payload_is_an_empty_object_and_stack_trace_is_the_handler_s(
    runtime: LocalRuntime, aws: Any
) -> None:
    # Follows https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html (Payload: the JSON
    # the function receives; none sends `{}`, as `aws lambda invoke` without --payload does) and
    # https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html (stackTrace: the
    # frames of the function's code).
    async with aws("lambda") as lam, aws("dynamodb") as ddb:
        # WHEN the tick function is invoked without a payload
        answer = await lam.invoke(FunctionName="sluice-test-tick")
        body = json.loads(await answer["Payload"].read())
        # THEN its handler got {} (it reads event.get("id"): None would have failed it)
        assert "FunctionError" not in answer
        assert body == {"ok": True, "function": "sluice-test-tick"}
        item = await ddb.get_item(
            TableName="sluice-test-ledger", Key={"PK": {"S": "TICK#none"}, "SK": {"S": "META"}}
        )
        assert json.loads(item["Item"]["event"]["S"]) == {}
        # WHEN the worker function raises
        records = {"Records": [{"messageId": "m", "body": json.dumps({"action": "raise"})}]}
        answer = await lam.invoke(
            FunctionName="sluice-test-worker", Payload=json.dumps(records).encode()
        )
        error = json.loads(await answer["Payload"].read())
    # THEN the stack trace starts in the handler, with none of the runtime's own frames
    assert answer["FunctionError"] == "Unhandled"
    assert error["errorType"] == "RuntimeError"
    first = error["stackTrace"][0]
    assert "fixtures/fn/worker.py" in first
    assert "in lambda_handler" in first
    assert not any("sluice/local/" in frame for frame in error["stackTrace"])


SHORT_VISIBILITY = f"""
Transform: AWS::Serverless-2016-10-31
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 20
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {FIXTURES / "fn"}
      Handler: worker.tick_handler
      Runtime: python3.12
      Timeout: 30
      Events:
        Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
"""


async def test_sqs_mapping_is_refused_when_visibility_is_below_the_function_timeout(
    moto_endpoint: str, tmp_path: Path
) -> None:
    # Follows https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
    # (CreateEventSourceMapping refuses a queue whose visibility timeout is shorter than the
    # function timeout, with InvalidParameterValueException).
    template = tmp_path / "service.yaml"
    template.write_text(SHORT_VISIBILITY)
    options = fixture_options(tmp_path / "state", free_port())
    options.templates = [FIXTURES / "platform.yaml", template]
    options.prewarm = False
    with pytest.raises(ProvisioningError) as refused:
        await LocalRuntime(options).start()
    assert (
        "InvalidParameterValueException: Queue visibility timeout: 20 seconds is less than "
        "Function timeout: 30 seconds"
    ) in str(refused.value)
    assert "FnQueue" in str(refused.value)
