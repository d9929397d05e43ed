"""Every problem of a definition, reported at once, through boto3 against the standalone
endpoint: ValidateStateMachineDefinition lists one diagnostic per problem (severity, code,
message, location; `maxResults`, `truncated`) and CreateStateMachine's `InvalidDefinition`
message lists them all.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/apireference/API_ValidateStateMachineDefinition.html
- https://docs.aws.amazon.com/step-functions/latest/apireference/API_ValidateStateMachineDefinitionDiagnostic.html
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sluice.local.workflow import ThreadedWorkflowService
from sluice.local.workflow.server import make_server

ROLE = "arn:aws:iam::123456789012:role/sfn"


@pytest.fixture
def sfn() -> Iterator[Any]:
    service = ThreadedWorkflowService().start()
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield boto3.client(
            "stepfunctions",
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(inject_host_prefix=False),
        )
    finally:
        server.shutdown()
        server.server_close()
        service.close()


# Four problems in four places: an unknown field, Parameters on a Fail state, an unknown state
# type inside a Parallel branch, and a state nothing reaches.
BROKEN = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Pass", "Colour": "blue", "Next": "Both"},
        "Both": {
            "Type": "Parallel",
            "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Teleport", "End": True}}}],
            "Next": "Stop",
        },
        "Stop": {"Type": "Fail", "Parameters": {}},
        "Orphan": {"Type": "Succeed"},
    },
}
EXPECTED = [
    ("SCHEMA_VALIDATION_FAILED", "/States/A"),
    ("SCHEMA_VALIDATION_FAILED", "/States/Both/Branches/0/States/X/Type"),
    ("SCHEMA_VALIDATION_FAILED", "/States/Stop"),
    ("MISSING_TRANSITION_TARGET", "/States/Orphan"),
]


def test_validate_lists_every_problem_as_a_diagnostic(sfn: Any) -> None:
    doc = sfn.validate_state_machine_definition(definition=json.dumps(BROKEN))
    assert doc["result"] == "FAIL"
    assert doc["truncated"] is False
    found = [(d["code"], d["location"]) for d in doc["diagnostics"]]
    assert found == EXPECTED
    assert {d["severity"] for d in doc["diagnostics"]} == {"ERROR"}
    assert "Colour" in doc["diagnostics"][0]["message"]
    assert "Parameters" in doc["diagnostics"][2]["message"]
    assert doc["diagnostics"][3]["message"] == 'State "Orphan" is not reachable.'
    first = sfn.validate_state_machine_definition(definition=json.dumps(BROKEN), maxResults=2)
    assert [(d["code"], d["location"]) for d in first["diagnostics"]] == EXPECTED[:2]
    assert first["truncated"] is True
    fixed = json.loads(json.dumps(BROKEN))
    del fixed["States"]["Orphan"]
    del fixed["States"]["A"]["Colour"]
    fixed["States"]["Both"]["Branches"][0]["States"]["X"]["Type"] = "Pass"
    del fixed["States"]["Stop"]["Parameters"]
    ok = sfn.validate_state_machine_definition(definition=json.dumps(fixed))
    assert (ok["result"], ok["diagnostics"]) == ("OK", [])


def test_create_refuses_with_every_problem_in_the_message(sfn: Any) -> None:
    with pytest.raises(ClientError) as refused:
        sfn.create_state_machine(name="broken", definition=json.dumps(BROKEN), roleArn=ROLE)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidDefinition"
    message = error["Message"]
    assert message.startswith("Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: ")
    problems = message.removeprefix("Invalid State Machine Definition: '").removesuffix("'")
    # AWS's shape: `<CODE>: <what> at <pointer>`, one per problem, `, `-separated.
    assert [p.rsplit(" at ", 1)[1] for p in problems.split(", ")] == [
        location for _, location in EXPECTED
    ]
