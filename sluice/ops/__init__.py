"""The logic behind the operator CLI, kept out of click so it is testable: ledger queries,
quarantine sampling, DLQ peeking, Step Functions look-ups, event checks and the cost model.

Everything here uses synchronous boto3 clients passed in by the caller (the CLI builds them from
`sluice.context.CliContext`); nothing reads the environment.
"""
