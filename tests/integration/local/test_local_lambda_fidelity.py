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


DESTINATIONS = f"""
Transform: AWS::Serverless-2016-10-31
Parameters:
  LedgerTable:
    Type: AWS::SSM::Parameter::Value<String>
    Default: /sluice/test/ledger-table
Globals:
  Function:
    Runtime: python3.12
    CodeUri: {FIXTURES / "fn"}
    Handler: worker.lambda_handler
    Environment:
      Variables:
        SLUICE_LEDGER_TABLE: !Ref LedgerTable
Resources:
  Failures:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: async-failures
  Results:
    Type: AWS::Events::EventBus
    Properties:
      Name: async-results
  Successes:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: async-successes
  SuccessesPolicy:
    Type: AWS::SQS::QueuePolicy
    Properties:
      Queues: [!Ref Successes]
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {{Service: events.amazonaws.com}}
            Action: sqs:SendMessage
            Resource: !GetAtt Successes.Arn
  SuccessRule:
    Type: AWS::Events::Rule
    Properties:
      Name: async-success
      EventBusName: !Ref Results
      EventPattern:
        source: [lambda]
        detail-type: [Lambda Function Invocation Result - Success]
      Targets:
        - Id: q
          Arn: !GetAtt Successes.Arn
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: async-worker
      Policies:
        - DynamoDBCrudPolicy: {{TableName: !Ref LedgerTable}}
        - SQSSendMessagePolicy: {{QueueName: !GetAtt Failures.QueueName}}
        - EventBridgePutEventsPolicy: {{EventBusName: !Ref Results}}
      EventInvokeConfig:
        MaximumRetryAttempts: 1
        DestinationConfig:
          OnFailure:
            Type: SQS
            Destination: !GetAtt Failures.Arn
          OnSuccess:
            Type: EventBridge
            Destination: !GetAtt Results.Arn
  AgedFailures:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: aged-failures
  AgedDlq:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: aged-dlq
  Aged:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: async-aged
      DeadLetterQueue:
        Type: SQS
        TargetArn: !GetAtt AgedDlq.Arn
      Policies:
        - DynamoDBCrudPolicy: {{TableName: !Ref LedgerTable}}
        - SQSSendMessagePolicy: {{QueueName: !GetAtt AgedFailures.QueueName}}
  AgedConfig:
    # The resource itself (SAM's EventInvokeConfig property also grants the role the
    # destinations; this one does not: its role may send to AgedFailures only).
    Type: AWS::Lambda::EventInvokeConfig
    Properties:
      FunctionName: !Ref Aged
      Qualifier: $LATEST
      MaximumRetryAttempts: 2
      MaximumEventAgeInSeconds: 60
      DestinationConfig:
        OnFailure:
          Destination: !GetAtt AgedFailures.Arn
        OnSuccess:
          Destination: !GetAtt Failures.Arn
"""

RAISE = {"Records": [{"messageId": "m", "body": json.dumps({"action": "raise"})}]}


async def test_async_invocations_honour_event_invoke_config_and_send_records_to_destinations(
    moto_endpoint: str, tmp_path: Path, wait_for: Any
) -> None:
    # Follows https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
    # (the invocation record: requestContext.condition Success / RetriesExhausted /
    # EventAgeExceeded, approximateInvokeCount, requestPayload, responseContext,
    # responsePayload; an event bus destination gets "Lambda Function Invocation Result -
    # Success") and https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
    # (MaximumRetryAttempts, MaximumEventAgeInSeconds). The execution role needs the
    # destination's permission (the Aged function's role has none for the queue).
    import aioboto3

    template = tmp_path / "async.yaml"
    template.write_text(DESTINATIONS)
    options = fixture_options(tmp_path / "state", free_port())
    options.templates = [FIXTURES / "platform.yaml", template]
    options.prewarm = False
    runtime = LocalRuntime(options)
    await runtime.start()
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    try:
        async with (
            session.client("lambda", endpoint_url=runtime.endpoint_url) as lam,
            session.client("sqs", endpoint_url=runtime.endpoint_url) as sqs,
        ):
            failures = (await sqs.get_queue_url(QueueName="async-failures"))["QueueUrl"]
            successes = (await sqs.get_queue_url(QueueName="async-successes"))["QueueUrl"]

            async def one(url: str) -> Any:
                got = (await sqs.receive_message(QueueUrl=url)).get("Messages", [])
                return json.loads(got[0]["Body"]) if got else None

            # WHEN a failing event is invoked asynchronously THEN after one retry its record
            # reaches the on-failure queue
            await lam.invoke(
                FunctionName="async-worker", InvocationType="Event", Payload=json.dumps(RAISE)
            )
            failed = await wait_for(lambda: one(failures))
            assert failed["requestContext"]["condition"] == "RetriesExhausted"
            assert failed["requestContext"]["approximateInvokeCount"] == 2
            assert failed["requestContext"]["functionArn"].endswith(
                ":function:async-worker:$LATEST"
            )
            assert failed["requestPayload"] == RAISE
            assert failed["responseContext"]["functionError"] == "Unhandled"
            assert failed["responsePayload"]["errorType"] == "RuntimeError"
            # WHEN one succeeds THEN its record reaches the bus, as an EventBridge event
            await lam.invoke(
                FunctionName="async-worker",
                InvocationType="Event",
                Payload=json.dumps({"Records": []}),
            )
            event = await wait_for(lambda: one(successes))
            assert event["source"] == "lambda"
            assert event["detail"]["requestContext"]["condition"] == "Success"
            assert event["detail"]["responsePayload"] == {"batchItemFailures": []}
            # WHEN an event outlives MaximumEventAgeInSeconds (60 s: one local second, so the
            # wait before the first retry) THEN it is not retried: EventAgeExceeded
            aged = (await sqs.get_queue_url(QueueName="aged-failures"))["QueueUrl"]
            await lam.invoke(
                FunctionName="async-aged", InvocationType="Event", Payload=json.dumps(RAISE)
            )
            too_old = await wait_for(lambda: one(aged))
            assert too_old["requestContext"]["condition"] == "EventAgeExceeded"
            assert too_old["requestContext"]["approximateInvokeCount"] == 1
            # AND the function's own dead-letter queue gets the event as it came, with
            # RequestID, ErrorCode and ErrorMessage (the older async DLQ, same page)
            dlq = (await sqs.get_queue_url(QueueName="aged-dlq"))["QueueUrl"]

            async def dead_letters() -> Any:
                got = await sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])
                return got.get("Messages")

            (dead,) = await wait_for(dead_letters)
            assert json.loads(dead["Body"]) == RAISE
            attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
            assert attributes["RequestID"] == too_old["requestContext"]["requestId"]
            assert attributes["ErrorCode"] == "200"
            assert attributes["ErrorMessage"] == "fixture asked to raise"
            # WHEN its success record is for a queue its role may not send to THEN it is refused
            await lam.invoke(
                FunctionName="async-aged",
                InvocationType="Event",
                Payload=json.dumps({"Records": []}),
            )
            await wait_for(lambda: _denials(runtime))
            assert await one(failures) is None
            denial = runtime.describe()["iam"]["recent_denials"][-1]
            assert denial["action"] == "sqs:SendMessage"
    finally:
        await runtime.stop()


async def _denials(runtime: LocalRuntime) -> int:
    return int(runtime.describe()["iam"]["destination_denials"])
