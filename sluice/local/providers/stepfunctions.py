"""`AWS::StepFunctions::StateMachine`, run by the local workflow engine."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, ClassVar

from sluice.local.providers.base import ResourceProvider, ResourceRequest, generated_name, register
from sluice.local.template import ACCOUNT_ID, Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping


@register
class StateMachineProvider(ResourceProvider):
    """A state machine, its `DefinitionSubstitutions` applied (a placeholder left fails `up`)."""

    type_name = "AWS::StepFunctions::StateMachine"
    honoured = frozenset(
        {
            "StateMachineName",
            "Definition",
            "DefinitionString",
            "DefinitionSubstitutions",
            "RoleArn",
            "StateMachineType",
            "Tags",
        }
    )
    noted: ClassVar[Mapping[str, str]] = {
        "LoggingConfiguration": "execution history is kept by the engine instead",
        "TracingConfiguration": "X-Ray is not emulated",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        definition = props.get("DefinitionString")
        if definition is None:
            definition = json.dumps(props.get("Definition") or {})
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            definition = str(definition).replace("${" + str(key) + "}", str(value))
        leftover = re.search(r"\$\{([A-Za-z0-9_]+)\}", str(definition))
        if leftover:
            raise request.error(
                f"placeholder ${{{leftover.group(1)}}} has no DefinitionSubstitutions entry",
                prop="DefinitionSubstitutions",
            )
        name = str(
            props.get("StateMachineName") or generated_name(request.stack, request.logical_id, 80)
        )
        state_machine_arn = await self.ctx.sink.register_state_machine(
            name,
            str(definition),
            str(props.get("RoleArn") or f"arn:aws:iam::{ACCOUNT_ID}:role/local"),
            str(props.get("StateMachineType", "STANDARD")),
        )
        request.report.action = "emulated"
        request.report.note = "; ".join(["workflow engine", *notes])
        return Outputs(ref=state_machine_arn, attrs={"Arn": state_machine_arn, "Name": name})
