"""One provider per CloudFormation resource type (`base.ResourceProvider`), registered by type
name in `base.PROVIDERS`; `sluice.local.provisioner` keeps ordering and intrinsics and dispatches.

Each provider declares the properties it honours and the ones it only notes; `skipped` lists the
types with no local meaning. Importing this package registers every provider.
"""

from sluice.local.providers import (  # noqa: F401  (registration on import)
    awslambda,
    catalog,
    dynamodb,
    events,
    iam,
    kms,
    logs,
    s3,
    scheduler,
    schemas,
    skipped,
    sns,
    sqs,
    ssm,
    stepfunctions,
)
from sluice.local.providers.base import (
    PROVIDERS,
    Limits,
    ProvisionContext,
    ResourceProvider,
    ResourceReport,
    ResourceRequest,
    RuntimeSink,
    ScheduleSpec,
)

__all__ = [
    "PROVIDERS",
    "Limits",
    "ProvisionContext",
    "ResourceProvider",
    "ResourceReport",
    "ResourceRequest",
    "RuntimeSink",
    "ScheduleSpec",
]
