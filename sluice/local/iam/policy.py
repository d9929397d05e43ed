"""IAM policy documents, parsed once into matchers, and evaluated the way AWS documents it.

A document (`{"Version": ..., "Statement": [...] | {...}}`) becomes a `Policy` of `Statement`s
whose actions, resources, principals and conditions are compiled (regular expressions, parsed
numbers, dates and networks) at parse time; `parse_policy` caches the result per document object,
so evaluating a request never re-reads the JSON.

What this module follows, by AWS page (IAM User Guide):

- Policy evaluation logic (`reference_policies_evaluation-logic.html`): an explicit Deny in any
  applicable statement wins; else an Allow; else the request is implicitly denied. `Policy.evaluate`
  answers the statement-level part (`DENY`, `ALLOW`, or `None` when nothing applies); the
  combination of identity-based and resource-based policies is in `enforcer`.
- Action (`reference_policies_elements_action.html`): `service:Name`, case-insensitive, with `*`
  and `?` wildcards; `NotAction` matches every action except those listed.
- Resource (`reference_policies_elements_resource.html`): case-sensitive ARNs with `*` and `?`
  wildcards; a wildcard stays inside its colon-separated ARN segment except in the last segment
  (the resource part, `bucket/key/with/slashes`); `"*"` matches everything; `NotResource` inverts.
- Principal (`reference_policies_elements_principal.html`): `"*"` (everyone, service principals
  included), `{"AWS": ...}` with a role, an assumed-role session or an account (`123456789012`,
  the same as `arn:aws:iam::123456789012:root`), `{"Service": ...}`. An account principal
  *delegates* to the account: it allows that account's root, while the account's roles still need
  an identity-based Allow (the enforcer applies this); a Deny naming an account applies to every
  principal of the account. `NotPrincipal` applies a statement to everyone except the principals
  listed (for a role session both the session or role and its account must be listed, as the page
  asks of `Deny` + `NotPrincipal`).
- Condition operators (`reference_policies_elements_condition_operators.html`): String*,
  Numeric*, Date*, Bool, BinaryEquals, IpAddress/NotIpAddress, Arn*, Null, the `...IfExists`
  suffix. A key absent from the request makes a condition false, except for negated operators
  (`StringNotEquals`, `ArnNotLike`, `NotIpAddress`, ...), where it is true, and except for
  `...IfExists` (true) and `Null` (tests presence).
- Several keys or operators (`reference_policies_multi-value-conditions.html`): operators AND,
  keys AND, the values of one key OR — NOR for a negated operator. Set operators:
  `ForAllValues:` is true when every request value matches (and when the key is absent or
  empty); `ForAnyValue:` is true when at least one matches (false when absent or empty).
  Condition key names are case-insensitive; values are case-sensitive unless the operator says
  otherwise.
- Policy variables (`reference_policies_variables.html`): `${aws:PrincipalArn}` and any request
  key, with a default `${key, 'default'}`, and `${*}`, `${?}`, `${$}` for the literal characters,
  in `Resource`/`NotResource` and in the values of string, ARN and Bool conditions, only in
  `"Version": "2012-10-17"` documents (older or absent versions read `${...}` literally). A
  variable whose key is absent and has no default matches nothing.

Invalid documents (an unknown operator, a statement without Effect, Action and NotAction together,
a non-numeric value for a Numeric operator, ...) raise `PolicyError` naming the statement.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from sluice.local.iam.ports import PolicyDocument, Principal

Effect = Literal["Allow", "Deny"]
ALLOW: Final = "Allow"
DENY: Final = "Deny"

CURRENT_VERSION = "2012-10-17"


class PolicyError(ValueError):
    """A policy document AWS would reject; the message names the statement and the element."""


# --------------------------------------------------------------------------- request context


class RequestContext:
    """What one evaluation looks at: the action, the resource and the condition keys.

    Args:
        action: `service:Action` (any case).
        resource: the resource ARN or `*`.
        keys: condition keys (any case) to one value or a list of values.
        lazy: keys (lower-case) computed only when a condition asks for them.
    """

    __slots__ = ("action", "keys", "lazy", "resource")

    def __init__(
        self,
        action: str,
        resource: str,
        keys: Mapping[str, str | Sequence[str]],
        lazy: Mapping[str, Callable[[], str]] | None = None,
    ) -> None:
        self.action = action.lower()
        self.resource = resource
        normalized: dict[str, tuple[str, ...]] = {}
        for name, value in keys.items():
            normalized[name.lower()] = (value,) if isinstance(value, str) else tuple(value)
        self.keys = normalized
        self.lazy = lazy

    @classmethod
    def normalized(
        cls,
        action: str,
        resource: str,
        keys: dict[str, tuple[str, ...]],
        lazy: Mapping[str, Callable[[], str]] | None = None,
    ) -> RequestContext:
        """A context from keys already lower-case with tuple values (no copy)."""
        ctx = cls.__new__(cls)
        ctx.action = action.lower()
        ctx.resource = resource
        ctx.keys = keys
        ctx.lazy = lazy
        return ctx

    def values(self, key: str) -> tuple[str, ...] | None:
        """The request's values of `key` (lower-case), None when absent."""
        found = self.keys.get(key)
        if found is None and self.lazy is not None:
            compute = self.lazy.get(key)
            if compute is not None:
                found = (compute(),)
                self.keys[key] = found
        return found

    def first(self, key: str) -> str | None:
        """The first value of `key` (lower-case), for policy variables."""
        found = self.values(key)
        return found[0] if found else None


# --------------------------------------------------------------------------- patterns


def _glob(text: str) -> str:
    """A case-sensitive `*`/`?` wildcard string as regex source (whole string)."""
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)


def _arn_glob(text: str) -> str:
    """An ARN pattern as regex source: `*`/`?` stay within a colon-separated segment, except in the
    sixth (resource) segment, where they span anything; a pattern that is not an ARN at all is an
    ordinary wildcard string."""
    parts = text.split(":", 5)
    if len(parts) < 6 and not text.startswith("arn:"):
        return _glob(text)
    head = [
        "".join("[^:]*" if ch == "*" else "[^:]" if ch == "?" else re.escape(ch) for ch in part)
        for part in parts[:5]
    ]
    if len(parts) < 6:
        # An incomplete ARN: its wildcards never span segments, so it matches no full ARN.
        return ":".join(head)
    return ":".join([*head, _glob(parts[5])])


@lru_cache(maxsize=4096)
def _compile(source: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(source, flags | re.DOTALL)


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,\s]+)\s*,\s*'([^']*)'\s*$")
_LITERALS = {"*": "*", "?": "?", "$": "$"}

_Piece = tuple[Literal["text"], str] | tuple[Literal["var"], str, str | None]


def _pieces(text: str) -> tuple[_Piece, ...] | None:
    """Split a value holding policy variables into text and variables; None when it has none."""
    if "${" not in text:
        return None
    out: list[_Piece] = []
    position = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > position:
            out.append(("text", text[position : match.start()]))
        inner = match.group(1).strip()
        if inner in _LITERALS:
            out.append(("var", "", _LITERALS[inner]))
        else:
            default = _DEFAULT.match(inner)
            if default:
                out.append(("var", default.group(1).lower(), default.group(2)))
            else:
                out.append(("var", inner.lower(), None))
        position = match.end()
    if position < len(text):
        out.append(("text", text[position:]))
    return tuple(out)


def _substitute(pieces: tuple[_Piece, ...], ctx: RequestContext) -> list[tuple[bool, str]] | None:
    """`(is_literal, text)` parts with the variables replaced; None when a variable is unset."""
    parts: list[tuple[bool, str]] = []
    for piece in pieces:
        if piece[0] == "text":
            parts.append((False, piece[1]))
            continue
        _, key, default = piece
        value = ctx.first(key) if key else None
        if value is None:
            value = default
        if value is None:
            return None
        parts.append((True, value))
    return parts


class _ArnMatcher:
    """A set of ARN (or `*`) patterns; variables substituted per request, literal."""

    __slots__ = ("_any", "_static", "_templates")

    def __init__(self, patterns: Iterable[str], variables: bool) -> None:
        static: list[str] = []
        templates: list[tuple[_Piece, ...]] = []
        self._any = False
        for pattern in patterns:
            pieces = _pieces(pattern) if variables else None
            if pieces is None:
                if pattern == "*":
                    self._any = True
                static.append(_arn_glob(pattern))
            else:
                templates.append(pieces)
        self._static = _compile("(?:" + "|".join(static) + r")\Z") if static else None
        self._templates = tuple(templates)

    def matches(self, value: str, ctx: RequestContext) -> bool:
        if self._any:
            return True
        if self._static is not None and self._static.match(value):
            return True
        for pieces in self._templates:
            parts = _substitute(pieces, ctx)
            if parts is None:
                continue
            if _compile(_arn_glob_parts(tuple(parts)) + r"\Z").match(value):
                return True
        return False


@lru_cache(maxsize=4096)
def _arn_glob_parts(parts: tuple[tuple[bool, str], ...]) -> str:
    """Like `_arn_glob`, for a pattern whose substituted variable values are literal text."""
    out: list[str] = []
    segment = 0
    for literal, text in parts:
        if literal:
            out.append(re.escape(text))
            continue
        for ch in text:
            if ch == ":" and segment < 5:
                segment += 1
                out.append(":")
            elif ch == "*":
                out.append("[^:]*" if segment < 5 else ".*")
            elif ch == "?":
                out.append("[^:]" if segment < 5 else ".")
            else:
                out.append(re.escape(ch))
    return "".join(out)


class _ActionMatcher:
    __slots__ = ("_exact", "_pattern")

    def __init__(self, actions: Iterable[str], sid: str) -> None:
        exact: set[str] = set()
        wild: list[str] = []
        for action in actions:
            if action != "*" and ":" not in action:
                raise PolicyError(f"statement {sid}: action {action!r} is not service:Name")
            if "*" in action or "?" in action:
                wild.append(_glob(action.lower()))
            else:
                exact.add(action.lower())
        self._exact = frozenset(exact)
        self._pattern = _compile("(?:" + "|".join(wild) + r")\Z") if wild else None

    def matches(self, action: str) -> bool:
        """`action` is lower-case."""
        if action in self._exact:
            return True
        return self._pattern is not None and self._pattern.match(action) is not None


# --------------------------------------------------------------------------- principals


def account_root(account: str) -> str:
    """The ARN of an account principal: `arn:aws:iam::<account>:root`."""
    return f"arn:aws:iam::{account}:root"


_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ROOT_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):root$")

PrincipalMatch = Literal["direct", "account"]


@dataclass(frozen=True)
class _PrincipalSet:
    everyone: bool
    arns: frozenset[str]
    accounts: frozenset[str]
    services: frozenset[str]

    @classmethod
    def parse(cls, raw: Any, sid: str) -> _PrincipalSet:
        if raw == "*":
            return cls(True, frozenset(), frozenset(), frozenset())
        if not isinstance(raw, Mapping):
            raise PolicyError(f'statement {sid}: Principal must be "*" or an object')
        everyone = False
        arns: set[str] = set()
        accounts: set[str] = set()
        services: set[str] = set()
        for kind, values in raw.items():
            for value in _strings(values, f"statement {sid}: Principal.{kind}"):
                if kind == "AWS":
                    if value == "*":
                        everyone = True
                    elif _ACCOUNT_ID.match(value):
                        accounts.add(value)
                    elif root := _ROOT_ARN.match(value):
                        accounts.add(root.group(1))
                    else:
                        arns.add(value)
                elif kind == "Service":
                    services.add(value.lower())
                elif kind not in ("Federated", "CanonicalUser"):
                    raise PolicyError(f"statement {sid}: unknown principal type {kind!r}")
                # Federated and canonical-user principals never call the local endpoint.
        return cls(everyone, frozenset(arns), frozenset(accounts), frozenset(services))

    def match(self, principal: Principal) -> PrincipalMatch | None:
        """`direct` when the principal itself is named (or everyone), `account` when only its
        account is (a delegation: the account's identity policies decide for its roles)."""
        if self.everyone:
            return "direct"
        if principal.kind == "service":
            return "direct" if principal.arn.lower() in self.services else None
        if principal.arn in self.arns or (
            principal.role_arn is not None and principal.role_arn in self.arns
        ):
            return "direct"
        if principal.account in self.accounts:
            return "direct" if principal.kind == "root" else "account"
        return None


# --------------------------------------------------------------------------- conditions


def _parse_date(text: str) -> datetime | None:
    value = text.strip()
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _parse_binary(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


_Compare = Callable[[str, Any], bool]
_Prepare = Callable[[str], Any]


def _number_cmp(op: Callable[[float, float], bool]) -> _Compare:
    def compare(value: str, wanted: float) -> bool:
        got = _parse_number(value)
        return got is not None and op(got, wanted)

    return compare


def _date_cmp(op: Callable[[datetime, datetime], bool]) -> _Compare:
    def compare(value: str, wanted: datetime) -> bool:
        got = _parse_date(value)
        return got is not None and op(got, wanted)

    return compare


def _ip_in(value: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(value.strip()) in network
    except ValueError:
        return False


def _binary_eq(value: str, wanted: bytes) -> bool:
    return _parse_binary(value) == wanted


def _string_like(value: str, pattern: re.Pattern[str]) -> bool:
    return pattern.match(value) is not None


@dataclass(frozen=True)
class _Operator:
    negated: bool
    prepare: _Prepare | None
    """Turns a policy value into what `compare` takes; returning None means invalid."""
    compare: _Compare
    variables: bool
    """Whether policy variables are substituted in the values."""


def _like(text: str) -> re.Pattern[str]:
    return _compile(_glob(text) + r"\Z")


def _arn_like(text: str) -> re.Pattern[str]:
    return _compile(_arn_glob(text) + r"\Z")


def _lower(text: str) -> str:
    return text.lower()


def _eq(value: str, wanted: str) -> bool:
    return value == wanted


def _eq_ci(value: str, wanted: str) -> bool:
    return value.lower() == wanted


def _bool_eq(value: str, wanted: str) -> bool:
    return value.lower() == wanted


def _op(
    negated: bool, prepare: _Prepare | None, compare: _Compare, variables: bool = False
) -> _Operator:
    return _Operator(negated, prepare, compare, variables)


_OPERATORS: dict[str, _Operator] = {
    "stringequals": _op(False, None, _eq, True),
    "stringnotequals": _op(True, None, _eq, True),
    "stringequalsignorecase": _op(False, _lower, _eq_ci, True),
    "stringnotequalsignorecase": _op(True, _lower, _eq_ci, True),
    "stringlike": _op(False, _like, _string_like, True),
    "stringnotlike": _op(True, _like, _string_like, True),
    "numericequals": _op(False, _parse_number, _number_cmp(lambda a, b: a == b)),
    "numericnotequals": _op(True, _parse_number, _number_cmp(lambda a, b: a == b)),
    "numericlessthan": _op(False, _parse_number, _number_cmp(lambda a, b: a < b)),
    "numericlessthanequals": _op(False, _parse_number, _number_cmp(lambda a, b: a <= b)),
    "numericgreaterthan": _op(False, _parse_number, _number_cmp(lambda a, b: a > b)),
    "numericgreaterthanequals": _op(False, _parse_number, _number_cmp(lambda a, b: a >= b)),
    "dateequals": _op(False, _parse_date, _date_cmp(lambda a, b: a == b)),
    "datenotequals": _op(True, _parse_date, _date_cmp(lambda a, b: a == b)),
    "datelessthan": _op(False, _parse_date, _date_cmp(lambda a, b: a < b)),
    "datelessthanequals": _op(False, _parse_date, _date_cmp(lambda a, b: a <= b)),
    "dategreaterthan": _op(False, _parse_date, _date_cmp(lambda a, b: a > b)),
    "dategreaterthanequals": _op(False, _parse_date, _date_cmp(lambda a, b: a >= b)),
    "bool": _op(False, _lower, _bool_eq, True),
    "binaryequals": _op(False, _parse_binary, _binary_eq),
    "ipaddress": _op(False, _parse_network, _ip_in),
    "notipaddress": _op(True, _parse_network, _ip_in),
    "arnequals": _op(False, _arn_like, _string_like, True),
    "arnlike": _op(False, _arn_like, _string_like, True),
    "arnnotequals": _op(True, _arn_like, _string_like, True),
    "arnnotlike": _op(True, _arn_like, _string_like, True),
}
"""AWS's operators, lower-case. ArnEquals and ArnLike are the same test (the page gives both
segment-wise wildcard matching)."""


class _Condition:
    """One (operator, key, values) of a Condition block."""

    __slots__ = (
        "_dynamic",
        "_operator",
        "_static",
        "if_exists",
        "is_null",
        "key",
        "null",
        "qualifier",
    )

    def __init__(self, name: str, key: str, raw_values: Any, sid: str, variables: bool) -> None:
        qualifier, _, base = name.rpartition(":")
        qualifier = qualifier.lower()
        if qualifier not in ("", "forallvalues", "foranyvalue"):
            raise PolicyError(f"statement {sid}: unknown set operator {qualifier!r} in {name!r}")
        self.qualifier = qualifier
        lowered = base.lower()
        self.if_exists = lowered.endswith("ifexists") and lowered != "ifexists"
        if self.if_exists:
            lowered = lowered.removesuffix("ifexists")
        self.key = key.lower()
        values = _strings(raw_values, f"statement {sid}: condition {name} {key}")
        self.null: bool | None = None
        self.is_null = lowered == "null"
        self._static: tuple[Any, ...] = ()
        self._dynamic: tuple[tuple[_Piece, ...], ...] = ()
        if self.is_null:
            if self.if_exists or qualifier:
                raise PolicyError(f"statement {sid}: {name} is not a valid operator")
            wanted = {value.lower() for value in values}
            if not wanted <= {"true", "false"}:
                raise PolicyError(f"statement {sid}: Null takes true or false, got {values}")
            # Several values OR: ["true", "false"] holds whatever the request has.
            self.null = True if wanted == {"true"} else False if wanted == {"false"} else None
            self._operator = _OPERATORS["bool"]
            self._static = tuple(sorted(wanted))
            return
        operator = _OPERATORS.get(lowered)
        if operator is None:
            raise PolicyError(f"statement {sid}: unknown condition operator {name!r}")
        self._operator = operator
        static: list[Any] = []
        dynamic: list[tuple[_Piece, ...]] = []
        for value in values:
            pieces = _pieces(value) if variables and operator.variables else None
            if pieces is not None:
                dynamic.append(pieces)
                continue
            prepared = operator.prepare(value) if operator.prepare else value
            if prepared is None:
                raise PolicyError(f"statement {sid}: {value!r} is not a valid value for {name}")
            static.append(prepared)
        self._static = tuple(static)
        self._dynamic = tuple(dynamic)

    def _wanted(self, ctx: RequestContext) -> tuple[Any, ...]:
        if not self._dynamic:
            return self._static
        wanted = list(self._static)
        prepare = self._operator.prepare
        for pieces in self._dynamic:
            parts = _substitute(pieces, ctx)
            if parts is None:
                continue
            # A substituted value is literal text; only the policy's own text holds wildcards.
            if prepare is _like:
                source = "".join(re.escape(t) if literal else _glob(t) for literal, t in parts)
                wanted.append(_compile(source + r"\Z"))
            elif prepare is _arn_like:
                wanted.append(_compile(_arn_glob_parts(tuple(parts)) + r"\Z"))
            else:
                text = "".join(t for _, t in parts)
                wanted.append(prepare(text) if prepare else text)
        return tuple(wanted)

    def holds(self, ctx: RequestContext) -> bool:
        """Whether this condition holds for the request (AWS's missing-key rules included)."""
        values = ctx.values(self.key)
        present = bool(values)
        if self.is_null:
            return self.null is None or (not present if self.null else present)
        operator = self._operator
        if not present:
            if self.qualifier == "forallvalues":
                return True
            if self.if_exists:
                return True
            if self.qualifier == "foranyvalue":
                return False
            return operator.negated
        assert values is not None
        wanted = self._wanted(ctx)
        compare = operator.compare

        def matches(value: str) -> bool:
            return any(compare(value, w) for w in wanted)

        if self.qualifier == "forallvalues":
            if operator.negated:
                return all(not matches(v) for v in values)
            return all(matches(v) for v in values)
        if self.qualifier == "foranyvalue":
            if operator.negated:
                return any(not matches(v) for v in values)
            return any(matches(v) for v in values)
        if operator.negated:
            return not any(matches(v) for v in values)
        return any(matches(v) for v in values)


def _strings(raw: Any, where: str) -> list[str]:
    items = raw if isinstance(raw, list | tuple) else [raw]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float):
            out.append(str(item))
        else:
            raise PolicyError(f"{where}: {item!r} is not a string")
    return out


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class Statement:
    """One parsed statement. Build with `Policy.parse`."""

    sid: str
    effect: Effect
    actions: _ActionMatcher
    not_action: bool
    resources: _ArnMatcher | None
    not_resource: bool
    principals: _PrincipalSet | None
    not_principal: bool
    conditions: tuple[_Condition, ...]

    def matches_action(self, action: str) -> bool:
        """`action` (lower-case) is one this statement covers (Action, or not in NotAction)."""
        return self.actions.matches(action) != self.not_action

    def applies(self, ctx: RequestContext) -> bool:
        """Resource and conditions match (the action is matched by `Policy`, the principal by
        the caller)."""
        if self.resources is not None and (
            self.resources.matches(ctx.resource, ctx) == self.not_resource
        ):
            return False
        return all(condition.holds(ctx) for condition in self.conditions)

    def principal_match(self, principal: Principal) -> PrincipalMatch | None:
        """How this statement's Principal names `principal` (`direct` when it has none)."""
        if self.principals is None:
            return "direct"
        if not self.not_principal:
            return self.principals.match(principal)
        named = self.principals.match(principal)
        if principal.kind == "role":
            # Deny + NotPrincipal: a session is exempt only when the session (or role) and its
            # account are both listed.
            exempt = self.principals.everyone or (
                (
                    principal.arn in self.principals.arns
                    or principal.role_arn in self.principals.arns
                )
                and principal.account in self.principals.accounts
            )
            return None if exempt else "direct"
        return None if named == "direct" else "direct"


@dataclass(frozen=True)
class Verdict:
    """What one policy says about one request: an explicit Deny, an Allow, or nothing."""

    effect: Effect | None
    sid: str = ""
    via_account: bool = False
    """The Allow names the principal only through its account (a delegation)."""


NO_VERDICT = Verdict(None)


class Policy:
    """A parsed policy document. `Policy.parse(doc)`, then `evaluate` per request."""

    __slots__ = ("_by_action", "statements", "version")

    def __init__(self, statements: tuple[Statement, ...], version: str) -> None:
        self.statements = statements
        self.version = version
        self._by_action: dict[str, tuple[Statement, ...]] = {}
        """The statements covering each action seen (actions are few; the match is per policy)."""

    def for_action(self, action: str) -> tuple[Statement, ...]:
        """The statements whose Action/NotAction covers `action` (lower-case), memoized."""
        found = self._by_action.get(action)
        if found is None:
            found = tuple(s for s in self.statements if s.matches_action(action))
            if len(self._by_action) < 4096:
                self._by_action[action] = found
        return found

    @classmethod
    def parse(cls, document: PolicyDocument, *, resource_policy: bool = False) -> Policy:
        """Parse and compile `document`.

        Args:
            document: `{"Version": ..., "Statement": [...] | {...}}`.
            resource_policy: statements must name a Principal (identity-based policies must not).

        Raises:
            PolicyError: the document is not a valid policy.
        """
        if not isinstance(document, Mapping):
            raise PolicyError("a policy document is a JSON object")
        version = str(document.get("Version", "2008-10-17"))
        variables = version == CURRENT_VERSION
        raw = document.get("Statement")
        if raw is None:
            raise PolicyError("a policy document needs a Statement")
        raw_statements = [raw] if isinstance(raw, Mapping) else raw
        if not isinstance(raw_statements, list):
            raise PolicyError("Statement must be an object or a list of objects")
        statements = tuple(
            _parse_statement(item, index, variables, resource_policy)
            for index, item in enumerate(raw_statements)
        )
        return cls(statements, version)

    def evaluate(self, ctx: RequestContext, principal: Principal | None = None) -> Verdict:
        """The statement-level answer: `Deny` if any applicable statement denies, else `Allow` if
        any allows, else no verdict. With `principal`, statements with a Principal or
        NotPrincipal apply only to the principals they name."""
        allow: Verdict | None = None
        for statement in self.for_action(ctx.action):
            if not statement.applies(ctx):
                continue
            named = statement.principal_match(principal) if principal is not None else "direct"
            if named is None:
                continue
            if statement.effect == DENY:
                return Verdict(DENY, statement.sid)
            if allow is None or (allow.via_account and named == "direct"):
                allow = Verdict(ALLOW, statement.sid, via_account=named == "account")
        return allow or NO_VERDICT


def _parse_statement(raw: Any, index: int, variables: bool, resource_policy: bool) -> Statement:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"statement {index} is not an object")
    sid = str(raw.get("Sid", index))
    effect = raw.get("Effect")
    if effect not in (ALLOW, DENY):
        raise PolicyError(f"statement {sid}: Effect must be Allow or Deny, got {effect!r}")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError(f"statement {sid}: exactly one of Action and NotAction")
    not_action = "NotAction" in raw
    actions = _ActionMatcher(
        _strings(raw["NotAction" if not_action else "Action"], f"statement {sid}: Action"), sid
    )
    if "Resource" in raw and "NotResource" in raw:
        raise PolicyError(f"statement {sid}: Resource and NotResource together")
    not_resource = "NotResource" in raw
    resources: _ArnMatcher | None = None
    if "Resource" in raw or not_resource:
        resources = _ArnMatcher(
            _strings(raw["NotResource" if not_resource else "Resource"], f"statement {sid}"),
            variables,
        )
    elif not resource_policy:
        raise PolicyError(f"statement {sid}: an identity-based statement needs a Resource")
    if "Principal" in raw and "NotPrincipal" in raw:
        raise PolicyError(f"statement {sid}: Principal and NotPrincipal together")
    not_principal = "NotPrincipal" in raw
    principals: _PrincipalSet | None = None
    if "Principal" in raw or not_principal:
        if not resource_policy:
            raise PolicyError(f"statement {sid}: an identity-based policy cannot name a Principal")
        principals = _PrincipalSet.parse(raw["NotPrincipal" if not_principal else "Principal"], sid)
    elif resource_policy:
        raise PolicyError(f"statement {sid}: a resource-based statement needs a Principal")
    block = raw.get("Condition", {})
    if not isinstance(block, Mapping):
        raise PolicyError(f"statement {sid}: Condition must be an object")
    conditions: list[_Condition] = []
    for name, keys in block.items():
        if not isinstance(keys, Mapping):
            raise PolicyError(f"statement {sid}: Condition {name} must map keys to values")
        for key, values in keys.items():
            conditions.append(_Condition(str(name), str(key), values, sid, variables))
    return Statement(
        sid,
        effect,
        actions,
        not_action,
        resources,
        not_resource,
        principals,
        not_principal,
        tuple(conditions),
    )


# --------------------------------------------------------------------------- cache


class PolicyCache:
    """Parsed policies per document object (documents are immutable once handed over: replace a
    document to change a policy, never edit it in place). Thread-safe; bounded."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[int, bool], tuple[PolicyDocument, Policy]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, document: PolicyDocument, *, resource_policy: bool = False) -> Policy:
        """The parsed `document` (parsed on first use). Raises PolicyError."""
        key = (id(document), resource_policy)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is document:
            return entry[1]
        policy = Policy.parse(document, resource_policy=resource_policy)
        with self._lock:
            # Holding the document keeps its id from being reused while the entry lives.
            self._entries[key] = (document, policy)
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return policy


_DEFAULT_CACHE = PolicyCache()


def parse_policy(document: PolicyDocument, *, resource_policy: bool = False) -> Policy:
    """`Policy.parse` through a process-wide cache keyed by the document object."""
    return _DEFAULT_CACHE.get(document, resource_policy=resource_policy)
