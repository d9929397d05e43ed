"""The local workflow engine: an Amazon States Language interpreter with Distributed Map,
and the Step Functions API facade the local endpoint routes to. See README.md here."""

from sluice.local.workflow.api import handle
from sluice.local.workflow.engine import WorkflowEngine
from sluice.local.workflow.errors import ApiError, DefinitionError, StatesError, WorkflowError
from sluice.local.workflow.ports import (
    Clock,
    FunctionInvoker,
    InvokeResult,
    SdkCaller,
    ServiceError,
    SystemClock,
)
from sluice.local.workflow.service import ThreadedWorkflowService

__all__ = [
    "ApiError",
    "Clock",
    "DefinitionError",
    "FunctionInvoker",
    "InvokeResult",
    "SdkCaller",
    "ServiceError",
    "StatesError",
    "SystemClock",
    "ThreadedWorkflowService",
    "WorkflowEngine",
    "WorkflowError",
    "handle",
]
