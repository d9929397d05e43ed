"""Who holds an access key: the role registry and the credentials the runtime issues.

Roles live in the embedded moto's IAM (the providers create them through the IAM API, so
`aws iam get-role` answers and moto's STS `AssumeRole` works); their identity policies (inline and
attached managed, AWS managed ones included) are read from there at each resolution, so a policy
changed through the API applies to the next request.

Access keys resolve, in this order, to:

1. a role session the runtime issued (`issue`): each function's workers carry temporary
   credentials of the function's role (session name = the function name, as Lambda does); each
   state machine, rule target and schedule role gets its own session;
2. a role session moto's STS issued through `AssumeRole`;
3. anything else, or no key: the account root, so every existing client (the AWS CLI with dummy
   keys, test fixtures, load tests) keeps working.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sluice.local.iam.ports import PolicyDocument, Principal

AWS_MANAGED_PREFIX = "arn:aws:iam::aws:policy/"
"""ARNs of AWS managed policies (the documents moto ships are used)."""

CREDENTIAL_LIFETIME = timedelta(hours=12)
"""Lifetime written in `Expiration` (the runtime never expires its own sessions)."""


@dataclass(frozen=True)
class Credentials:
    """Temporary credentials of one role session."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    role_arn: str
    session_name: str
    expiration: datetime

    @property
    def session_arn(self) -> str:
        """`arn:aws:sts::<acct>:assumed-role/<role name>/<session>`."""
        account = self.role_arn.split(":")[4]
        return f"arn:aws:sts::{account}:assumed-role/{role_name(self.role_arn)}/{self.session_name}"

    def env(self) -> dict[str, str]:
        """The environment variables an SDK reads them from."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


def role_name(role_arn: str) -> str:
    """The name of `arn:aws:iam::<acct>:role/<path><name>`."""
    return role_arn.rsplit("/", 1)[-1]


def account_root(account: str) -> Principal:
    """The account root: holds every permission its account's resource policies do not deny."""
    return Principal(arn=f"arn:aws:iam::{account}:root", account=account, kind="root")


def service_principal(service: str, account: str) -> Principal:
    """An AWS service acting for a resource of `account` (`events.amazonaws.com`, ...)."""
    return Principal(arn=service, account=account, kind="service")


@cache
def _aws_managed_data() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    return {f"{AWS_MANAGED_PREFIX}{d['Path'].lstrip('/')}{name}": d for name, d in data.items()}


def aws_managed_policy(arn: str) -> PolicyDocument | None:
    """The document of an AWS managed policy, from the data moto ships; None if unknown."""
    entry = _aws_managed_data().get(arn)
    return None if entry is None else dict(entry["Document"])


def ensure_aws_managed_policy(account: str, arn: str) -> bool:
    """Make an AWS managed policy attachable in moto's IAM (moto loads none of them unless
    `MOTO_IAM_LOAD_MANAGED_POLICIES` is set, and then all ~1,600). Returns False if unknown."""
    from moto.iam.models import AWSManagedPolicy, iam_backends

    backend = iam_backends[account]["aws"]
    if arn in backend.managed_policies:
        return True
    entry = _aws_managed_data().get(arn)
    if entry is None:
        return False
    name = arn.rsplit("/", 1)[-1]
    policy = AWSManagedPolicy.from_data(name, account, "us-east-1", entry)
    backend.managed_policies[policy.arn] = policy
    return True


class PrincipalRegistry:
    """The `PrincipalStore` of the runtime (thread-safe: the endpoint resolves on its threads).

    Args:
        account: the local account id.
    """

    def __init__(self, account: str) -> None:
        self.account = account
        self._lock = threading.Lock()
        self._issued: dict[str, Credentials] = {}
        self._by_session: dict[tuple[str, str], Credentials] = {}
        self._documents: dict[str, PolicyDocument] = {}

    # ------------------------------------------------------------------ credentials

    def issue(self, role_arn: str, session_name: str) -> Credentials:
        """Temporary credentials of `role_arn` for `session_name` (the same ones on every call
        for the same pair, so warm workers and re-provisioning keep their keys).

        They are issued by moto's STS (as the service assuming the role would get them), so
        `sts get-caller-identity` with them names the role session; they stay resolvable here
        even if moto's state is reset.
        """
        with self._lock:
            current = self._by_session.get((role_arn, session_name))
            if current is not None:
                return current
            from moto.sts.models import sts_backends

            session_name = session_name[:64]
            assumed = sts_backends[self.account]["aws"].assume_role(
                region_name="us-east-1",
                role_session_name=session_name,
                role_arn=role_arn,
                policy="",
                duration=int(CREDENTIAL_LIFETIME.total_seconds()),
                external_id="",
            )
            creds = Credentials(
                access_key_id=str(assumed.access_key_id),
                secret_access_key=str(assumed.secret_access_key),
                session_token=str(assumed.session_token),
                role_arn=role_arn,
                session_name=session_name,
                expiration=datetime.now(UTC) + CREDENTIAL_LIFETIME,
            )
            self._issued[creds.access_key_id] = creds
            self._by_session[(role_arn, session_name)] = creds
            return creds

    def issued(self) -> list[Credentials]:
        """Every session the runtime issued."""
        with self._lock:
            return list(self._issued.values())

    # ------------------------------------------------------------------ PrincipalStore

    def resolve(self, access_key_id: str | None) -> Principal:
        """See `PrincipalStore.resolve`."""
        if not access_key_id:
            return account_root(self.account)
        creds = self._issued.get(access_key_id)
        if creds is not None:
            return self.session(creds.role_arn, creds.session_name)
        assumed = _moto_assumed_role(self.account, access_key_id)
        if assumed is not None:
            return self.session(*assumed)
        return account_root(self.account)

    def session(self, role_arn: str, session_name: str) -> Principal:
        """The principal of a session of `role_arn`, with the role's current identity policies
        (none if the role does not exist: every call is then implicitly denied)."""
        account = role_arn.split(":")[4] or self.account
        return Principal(
            arn=f"arn:aws:sts::{account}:assumed-role/{role_name(role_arn)}/{session_name}",
            account=account,
            kind="role",
            role_arn=role_arn,
            identity_policies=self.identity_policies(role_arn),
        )

    # ------------------------------------------------------------------ roles

    def identity_policies(self, role_arn: str) -> tuple[PolicyDocument, ...]:
        """The role's inline and attached managed policies, parsed (one object per distinct
        document text, so parsed policies are cached across requests)."""
        role = _moto_role(role_arn)
        if role is None:
            return ()
        texts = [str(text) for text in role.policies.values()]
        for managed in list(role.managed_policies.values()):
            text = _default_document(managed)
            if text is not None:
                texts.append(text)
        return tuple(self._document(text) for text in texts)

    def trust_policy(self, role_arn: str) -> PolicyDocument | None:
        """The role's trust policy (`AssumeRolePolicyDocument`), or None if no such role."""
        role = _moto_role(role_arn)
        if role is None or not role.assume_role_policy_document:
            return None
        return self._document(str(role.assume_role_policy_document))

    def role_arn(self, name_or_arn: str) -> str | None:
        """The ARN of a role given its name or ARN, if it exists."""
        from moto.iam.models import iam_backends

        if name_or_arn.startswith("arn:"):
            return name_or_arn if _moto_role(name_or_arn) is not None else None
        for role in list(iam_backends[self.account]["aws"].roles.values()):
            if role.name == name_or_arn:
                return str(role.arn)
        return None

    def _document(self, text: str) -> PolicyDocument:
        document = self._documents.get(text)
        if document is None:
            parsed = json.loads(text)
            document = parsed if isinstance(parsed, dict) else {}
            with self._lock:
                document = self._documents.setdefault(text, document)
        return document


def _default_document(managed: Any) -> str | None:
    for version in managed.versions:
        if version.is_default:
            return str(version.document)
    return None


def _moto_role(role_arn: str) -> Any:
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
        return None
    backend = iam_backends[parts[4]]["aws"]
    for role in list(backend.roles.values()):
        if role.arn == role_arn:
            return role
    return None


def _moto_assumed_role(account: str, access_key_id: str) -> tuple[str, str] | None:
    from moto.sts.models import sts_backends

    assumed = sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key_id)
    if assumed is None:
        return None
    return str(assumed.role_arn), str(assumed.session_name)
