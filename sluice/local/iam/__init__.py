"""IAM and resource policies, enforced by the local runtime.

Every call a function, a state machine, a rule target, a schedule or an outside client makes is
decided here the way AWS decides it: the caller's identity policies (the role of the function or
state machine; an unknown access key acts as the account root) and the resource's policy (bucket,
event bus, queue, function, role trust) are evaluated with AWS's documented evaluation logic, and
a denial answers with AWS's error shape. `sluice local up --no-iam` switches enforcement off.

- `ports`: the principal and resource-policy interfaces the runtime implements.
- `policy`: policy documents and their evaluation (statements, wildcards, conditions).
- `requests`: an HTTP request to the endpoint → the actions, resources and condition keys it needs.
- `enforcer`: the decision for one principal and access, the AWS-shaped denials, the counters.
"""
