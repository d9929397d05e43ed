"""What an Express workflow cannot run: `.sync` and `.waitForTaskToken` integrations, in an
EXPRESS state machine and in the EXPRESS child workflows of a Distributed Map.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html (Express
workflows support request-response integrations only) and
https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html.
"""

from __future__ import annotations

from sluice.local.workflow.errors import DefinitionError
from sluice.local.workflow.integrations.base import Pattern, parse_resource
from sluice.local.workflow.tree import Machine, MapState, ParallelState, TaskState

_WAITING = (Pattern.SYNC, Pattern.SYNC_JSON, Pattern.CALLBACK)


def express_refusal(machine: Machine, express: bool, base: str = "") -> DefinitionError | None:
    """The first Task that an Express workflow cannot run (None if there is none): anywhere in
    `machine` when `express`, and in every Distributed Map whose children are EXPRESS."""
    for name, state in machine.states.items():
        pointer = f"{base}/States/{name}"
        if express and isinstance(state, TaskState):
            resource = parse_resource(state.resource)
            if resource is not None and resource.pattern in _WAITING:
                return DefinitionError(
                    f"Express state machine does not support '{resource.pattern.value}' service"
                    " integration.",
                    state=name,
                    field="Resource",
                    pointer=f"{pointer}/Resource",
                )
        if isinstance(state, ParallelState):
            for index, branch in enumerate(state.branches):
                found = express_refusal(branch, express, f"{pointer}/Branches/{index}")
                if found is not None:
                    return found
        if isinstance(state, MapState) and state.processor is not None:
            child_express = express or (state.distributed and state.execution_type == "EXPRESS")
            found = express_refusal(state.processor, child_express, f"{pointer}/ItemProcessor")
            if found is not None:
                return found
    return None
