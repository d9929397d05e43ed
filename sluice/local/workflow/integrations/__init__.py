"""Task integrations, one module per resource family, and the registry that answers both
"which integration runs this resource" and "is this resource supported at all" (the latter is
what CreateStateMachine asks, so an unsupported resource is refused before anything runs).

| Resource | Module | Patterns |
|---|---|---|
| `arn:aws:lambda:…:function:…` | `lambda_` | request-response |
| `arn:aws:states:::lambda:invoke` | `lambda_` | request-response, `.waitForTaskToken` |
| `arn:aws:states:::sns:publish` | `sns` | request-response, `.waitForTaskToken` |
| `arn:aws:states:::sqs:sendMessage` | `sqs` | request-response, `.waitForTaskToken` |
| `arn:aws:states:::states:startExecution` | `stepfunctions` | all four |
| `arn:aws:states:::events:putEvents` | `eventbridge` | request-response, `.waitForTaskToken` |
| `…:::dynamodb:{put,update,get,delete}Item`, `…:::s3:{put,get}Object` | `passthrough` | RR |
| `arn:aws:states:::aws-sdk:<service>:<action>` | `sdk` | request-response, `.waitForTaskToken` |
"""

from __future__ import annotations

from sluice.local.workflow.integrations.base import (
    Integration,
    Pattern,
    Resource,
    TaskCall,
    TaskServices,
    parse_resource,
)
from sluice.local.workflow.integrations.eventbridge import PutEvents
from sluice.local.workflow.integrations.lambda_ import LambdaFunction, LambdaInvoke
from sluice.local.workflow.integrations.passthrough import ServiceAction
from sluice.local.workflow.integrations.sdk import AwsSdk
from sluice.local.workflow.integrations.sns import Publish
from sluice.local.workflow.integrations.sqs import SendMessage
from sluice.local.workflow.integrations.stepfunctions import StartExecution
from sluice.local.workflow.integrations.tokens import TaskTokens

__all__ = [
    "REGISTRY",
    "Integration",
    "Pattern",
    "Registry",
    "Resource",
    "TaskCall",
    "TaskServices",
    "TaskTokens",
    "UnsupportedResource",
]


class UnsupportedResource(Exception):
    """A Task resource the local engine cannot run; the message says why."""


class Registry:
    """Resource name (`family:action`) → integration; `aws-sdk` takes any action."""

    def __init__(self, integrations: dict[str, Integration], sdk: Integration):
        self._integrations = integrations
        self._sdk = sdk

    def lookup(self, arn: str) -> tuple[Integration, Resource]:
        """The integration and parsed resource for a Task's `Resource`.

        Raises:
            UnsupportedResource: not an ARN this engine knows, or a pattern AWS (or this
            engine) does not offer for it.
        """
        resource = parse_resource(arn)
        if resource is None:
            raise UnsupportedResource(
                f"the resource {arn} is not recognized: it is not a service integration "
                "(arn:aws:states:::<service>:<action>) or a Lambda function ARN"
            )
        if resource.family == "activity":
            raise UnsupportedResource(
                f"the resource {arn} is an activity: activities are not supported locally"
            )
        if resource.family == "aws-sdk":
            integration = self._sdk
            if ":" not in resource.action:
                raise UnsupportedResource(f"{arn} needs aws-sdk:<service>:<action>")
        else:
            found = self._integrations.get(resource.name)
            if found is None:
                supported = ", ".join(
                    sorted(k for k in self._integrations if not k.startswith("function:"))
                )
                raise UnsupportedResource(
                    f"the resource {arn} is not supported by the local engine"
                    f" (supported: {supported}, aws-sdk:*)"
                )
            integration = found
        if resource.pattern not in integration.patterns:
            raise UnsupportedResource(
                f"the resource {arn}: integration pattern"
                f" {resource.pattern.value or 'request-response'!r} is not supported"
                f" for {resource.family}:{resource.action}"
            )
        return integration, resource

    def unsupported(self, arn: str) -> str | None:
        """None when `arn` runs here, else why not (for CreateStateMachine's refusal)."""
        try:
            self.lookup(arn)
        except UnsupportedResource as exc:
            return str(exc)
        return None


_PASSTHROUGH = ServiceAction()

REGISTRY = Registry(
    {
        "function:invoke": LambdaFunction(),
        "lambda:invoke": LambdaInvoke(),
        "sns:publish": Publish(),
        "sqs:sendMessage": SendMessage(),
        "states:startExecution": StartExecution(),
        "events:putEvents": PutEvents(),
        "dynamodb:putItem": _PASSTHROUGH,
        "dynamodb:updateItem": _PASSTHROUGH,
        "dynamodb:getItem": _PASSTHROUGH,
        "dynamodb:deleteItem": _PASSTHROUGH,
        "s3:putObject": _PASSTHROUGH,
        "s3:getObject": _PASSTHROUGH,
    },
    sdk=AwsSdk(),
)
"""Every Task resource the local engine runs."""
