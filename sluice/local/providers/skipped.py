"""Types with no local meaning: listed by `up` as skipped, with the reason, never created.

Their `Ref` and `Fn::GetAtt` still resolve to plausible values, so resources that reference
them provision normally.
"""

from __future__ import annotations

from sluice.local.providers.base import (
    PROVIDERS,
    ResourceRequest,
    SkippedProvider,
    arn,
    generated_name,
)
from sluice.local.template import Outputs

SKIPPED: dict[str, str] = {
    "AWS::CloudWatch::Alarm": "no CloudWatch metrics locally",
    "AWS::CloudWatch::Dashboard": "no CloudWatch metrics locally",
    "AWS::XRay::Group": "X-Ray is not emulated",
    "AWS::XRay::SamplingRule": "X-Ray is not emulated",
    "AWS::SNS::Subscription": "alarm notifications are not emulated",
}
"""Skipped type → the reason `up` prints."""


class _Skipped(SkippedProvider):
    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        request.report.action = "skipped"
        request.report.note = self.reason
        return placeholder(request, self.type_name)


def placeholder(request: ResourceRequest, type_name: str) -> Outputs:
    """Plausible Ref/GetAtt values for a skipped resource, so references still resolve."""
    props = request.props
    name = str(
        props.get("AlarmName")
        or props.get("DashboardName")
        or generated_name(request.stack, request.logical_id)
    )
    service = type_name.split("::")[1].lower()
    resource_arn = arn(service, f"{request.logical_id}/{name}")
    return Outputs(ref=name, attrs={"Arn": resource_arn})


for _type_name, _reason in SKIPPED.items():
    PROVIDERS[_type_name] = type(
        _type_name.replace("::", ""), (_Skipped,), {"type_name": _type_name, "reason": _reason}
    )
