"""The promises of docs/guarantees.md, their mechanisms, and how each mechanism is switched off.

Each `Mechanism` names one `Mutation` (an in-memory edit of the source, see `mutation.py`) and the
tests that must fail while it is applied, cheapest first (`python -m tests.prove` stops a
mutation's run at the first failure). The promise table of docs/guarantees.md is generated from
`PROMISES` (`python -m tests.prove --write-doc`): a promise without a mechanism that a named test
catches cannot be listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.prove.mutation import Edit, Mutation

REL = "tests/reliability"
FAULTS = f"{REL}/test_fault_scenarios.py"
MESSAGES = f"{REL}/test_message_scenarios.py"
DELIVERY = f"{REL}/test_delivery_scenarios.py"
RECOVERY = f"{REL}/test_recovery_tools.py"
TIMING = f"{REL}/test_timing_scenarios.py"
REAPPEARS = "test_scenario_visibility_timeout_shorter_than_processing_reappears_while_first_runs"
OVERWRITTEN = "test_scenario_key_overwritten_while_first_version_processing_each_version_once"


@dataclass(frozen=True)
class Mechanism:
    """What keeps a promise, the mutation that switches it off, the tests that catch that."""

    what: str
    mutation: Mutation
    caught_by: tuple[str, ...]


@dataclass(frozen=True)
class Promise:
    number: int
    text: str
    mechanisms: tuple[Mechanism, ...]
    also: str = ""  # further evidence not checked by a mutation (a static scan, fuzzing, ...)


def _off(module: str, old: str, new: str) -> Edit:
    return Edit(module, old, new)


def _mutation(name: str, *edits: Edit) -> Mutation:
    return Mutation(name, edits)


LEDGER = "sluice_shared.aws.dynamodb"
STAGES = "sluice_shared.stages"
SQS = "sluice_shared.sqs"
INGEST = "sluice_ingest.domain"
PUBLISHED = "sluice_shared.published_contracts"
PUBLISHED_TESTS = "tests/integration/shared/test_published_contracts.py"

PROMISES: tuple[Promise, ...] = (
    Promise(
        1,
        "Every file reaches `COMPLETED`, `FAILED` or `QUARANTINED`, and "
        "`rows_in = rows_out + rows_quarantined` — also when its own message is parked as poison",
        (
            Mechanism(
                "ledger transitions conditional on the file's status",
                _mutation(
                    "ledger-status-unchecked",
                    _off(
                        LEDGER,
                        "wanted = {FileStatus(s) for s in expected}",
                        "wanted = set(FileStatus)",
                    ),
                ),
                (
                    "tests/integration/shared/test_port_contract_ledger.py::"
                    "test_ledger_duplicate_delivery_gets_stale_state_with_current",
                    f"{DELIVERY}::test_scenario_every_delivery_duplicated_output_is_identical",
                ),
            ),
            Mechanism(
                "output refuses to complete a file whose counts do not add up",
                _mutation(
                    "output-counts-unchecked",
                    _off(
                        "sluice_output.domain",
                        "    if rows_out != transformed.rows_out or rows_in != rows_out + "
                        "transformed.rows_quarantined:",
                        "    if False:",
                    ),
                ),
                (
                    "tests/unit/services/test_stage_requests.py::"
                    "test_output_named_staged_object_missing_fails_reconciliation_not_completes",
                ),
            ),
            Mechanism(
                "a stage whose own message is poison moves the file from its working state to "
                "`FAILED` with the reason code before the message is parked (`fail_file`: forward "
                "only, only from that state, under the version lock); a refused event fails "
                "nothing",
                _mutation(
                    "poison-strands-file",
                    _off(
                        STAGES,
                        "    try:\n        return await ledger.transition(\n            file_id,\n"
                        "            FileStatus.FAILED,",
                        "    try:\n        return None\n        return await ledger.transition(\n"
                        "            file_id,\n            FileStatus.FAILED,",
                    ),
                ),
                (
                    "tests/unit/reliability/test_poison_fails_file.py::"
                    "test_poison_of_the_files_own_message_fails_the_file_with_its_code",
                    f"{REL}/test_poison_file_scenarios.py::"
                    "test_scenario_raw_object_deleted_before_validate_runs_fails_the_file",
                ),
            ),
        ),
        also="every scenario ends with `sluice.verify.reconcile`",
    ),
    Promise(
        2,
        "A duplicated delivery changes nothing",
        (
            Mechanism(
                "ledger claim per step: a step the file has left is a no-op",
                _mutation(
                    "claim-ignores-left-step",
                    _off(
                        STAGES,
                        "from stale\n        return None",
                        "from stale\n        return stale.current",
                    ),
                ),
                (
                    f"{DELIVERY}::"
                    "test_scenario_republished_facts_keep_their_event_id_across_duplicate_deliveries",
                    f"{DELIVERY}::test_scenario_every_delivery_duplicated_output_is_identical",
                ),
            ),
            Mechanism(
                "deterministic object keys (a rewrite overwrites)",
                _mutation(
                    "object-keys-per-attempt",
                    _off(
                        "sluice_shared.datapath.output",
                        'name = f"part-{self.file_id}-b{self.bucket:04d}-{part.next_n:04d}'
                        '.parquet"',
                        'name = f"part-{self.file_id}-b{self.bucket:04d}-{part.next_n:04d}-'
                        "{__import__('uuid').uuid4().hex[:8]}.parquet\"",
                    ),
                ),
                (f"{DELIVERY}::test_scenario_every_delivery_duplicated_output_is_identical",),
            ),
            Mechanism(
                "the data path's writer threads (output's Parquet files, validate's staged "
                "buckets) write each file's parts in order, one thread at a time (the same bytes "
                "on one CPU or two)",
                _mutation(
                    "parquet-file-jobs-unordered",
                    _off(
                        "sluice_shared.datapath.ahead",
                        "        self._slots.acquire()\n        with self._lock:\n",
                        '        self._slots.acquire()\n        key = f"{key}#{id(job)}"\n'
                        "        with self._lock:\n",
                    ),
                ),
                (
                    "tests/unit/datapath/test_ahead.py::"
                    "test_background_writer_runs_a_files_jobs_one_at_a_time_other_files_meanwhile",
                ),
            ),
            Mechanism(
                "deterministic event ids: a re-published fact keeps its id",
                _mutation(
                    "event-id-random",
                    _off(
                        STAGES,
                        'return str(uuid.uuid5(_EVENT_NAMESPACE, f"{file_id}:{contract_type}"))',
                        "return str(uuid.uuid4())",
                    ),
                ),
                (
                    f"{DELIVERY}::"
                    "test_scenario_republished_facts_keep_their_event_id_across_duplicate_deliveries",
                ),
            ),
        ),
    ),
    Promise(
        3,
        "A write that failed, or that succeeded but answered 5xx (phantom), is retried boundedly "
        "and never doubles a row",
        (
            Mechanism(
                "`sluice_shared.retry` retries `TransientError` with full-jitter backoff",
                _mutation(
                    "retry-never",
                    _off(
                        "sluice_shared.retry",
                        "retry=retry_if_exception_type(TransientError),",
                        "retry=retry_if_exception_type(()),",
                    ),
                ),
                (
                    f"{FAULTS}::test_scenario_dynamodb_throttling_retried_files_complete",
                    f"{FAULTS}::test_scenario_s3_errors_and_phantom_writes_retried_bounded_"
                    "no_duplicate_rows",
                ),
            ),
        ),
        also="deterministic keys overwrite (promise 2)",
    ),
    Promise(
        4,
        "Every retry loop has a stop",
        (
            Mechanism(
                "`aws_retry` stops on attempts and on elapsed time",
                _mutation(
                    "retry-stop-raised",
                    _off(
                        "sluice_shared.retry",
                        "stop=stop_after_attempt(attempts) | stop_after_delay(max_elapsed),",
                        "stop=stop_after_attempt(attempts * 100) "
                        "| stop_after_delay(max_elapsed * 100),",
                    ),
                ),
                (
                    "tests/unit/shared/test_shared_errors_retry.py::"
                    "test_aws_retry_stops_after_attempts_with_the_last_error",
                    "tests/unit/shared/test_shared_errors_retry.py::"
                    "test_aws_retry_stops_on_elapsed_time",
                ),
            ),
        ),
        also="`tests/unit/reliability/test_retry_policy_scan.py` (every tenacity retry in "
        "`services/`, `sluice/`, `contracts/` is built with `stop=`)",
    ),
    Promise(
        5,
        "A worker killed mid-batch loses nothing and doubles nothing; the retry is not blocked. "
        "Near its timeout a handler starts no further record",
        (
            Mechanism(
                "a working state may be claimed again (the redelivered batch resumes the step)",
                _mutation(
                    "working-state-not-reclaimable",
                    _off(
                        "sluice_validate.domain",
                        "CLAIMABLE = (FileStatus.PENDING, FileStatus.VALIDATING)",
                        "CLAIMABLE = (FileStatus.PENDING,)",
                    ),
                    _off(
                        "sluice_transform.domain",
                        "CLAIMABLE = (FileStatus.VALIDATING, FileStatus.TRANSFORMING)",
                        "CLAIMABLE = (FileStatus.VALIDATING,)",
                    ),
                    _off(
                        "sluice_output.domain",
                        "CLAIMABLE = (FileStatus.TRANSFORMING, FileStatus.WRITING)",
                        "CLAIMABLE = (FileStatus.TRANSFORMING,)",
                    ),
                ),
                (
                    f"{FAULTS}::test_scenario_worker_killed_mid_batch_redelivered_without_"
                    "duplicates[TransactWriteItems-3]",
                    f"{FAULTS}::test_scenario_worker_killed_mid_batch_redelivered_without_"
                    "duplicates[PutObject-2]",
                ),
            ),
            Mechanism(
                "each attempt stages under its own prefix (keyed by the ledger version its claim "
                "produced, named in the fact it publishes) and never deletes staging",
                _mutation(
                    "attempt-staging-shared",
                    _off(
                        "sluice_shared.keys", '    return f"v{version:06d}"', '    return "v000001"'
                    ),
                ),
                (
                    "tests/unit/reliability/test_stage_concurrent_entry.py::"
                    "test_validate_two_fresh_copies_at_once_slower_keeps_faster_announced_staging",
                    "tests/unit/reliability/test_stage_concurrent_entry.py::"
                    "test_two_fresh_copies_both_finishing_each_announce_complete_distinct_staging",
                    "tests/unit/reliability/test_stage_reentry.py::"
                    "test_validate_duplicate_dying_mid_restage_keeps_finished_staging",
                ),
            ),
            Mechanism(
                "below `SLUICE_MIN_REMAINING_MS` left, the batch's unstarted records are reported "
                "failed and redelivered",
                _mutation(
                    "time-guard-off",
                    _off(
                        SQS,
                        "if self.started and remaining is not None and remaining() < "
                        "self.min_remaining_ms:",
                        "if False:",
                    ),
                ),
                (
                    f"{REL}/test_timeout_scenarios.py::"
                    "test_scenario_record_near_the_real_timeout_is_left_for_redelivery_not_killed",
                ),
            ),
        ),
        also="the soak (a worker killed mid-batch among every other fault)",
    ),
    Promise(
        6,
        "Two workers finalising one file: both claim, exactly one completes it",
        (
            Mechanism(
                "version-locked conditional writes: a claim made from a stale read loses on the "
                "version and is re-applied on top",
                _mutation(
                    "version-lock-off",
                    _off(
                        LEDGER,
                        'names = {"#status": "status", "#version": "version"}',
                        'names = {"#status": "status"}',
                    ),
                    _off(
                        LEDGER,
                        'values: dict[str, Any] = {":v": {"N": str(current.version)}}',
                        "values: dict[str, Any] = {}",
                    ),
                    _off(
                        LEDGER,
                        """f"#status IN ({', '.join(placeholders)}) AND #version = :v\"""",
                        """f"#status IN ({', '.join(placeholders)})\"""",
                    ),
                ),
                (
                    f"{REL}/test_concurrency_scenarios.py::"
                    "test_scenario_two_concurrent_finalisers_exactly_one_wins",
                ),
            ),
        ),
    ),
    Promise(
        7,
        "Partial batch failures retry only the failed entries",
        (
            Mechanism(
                "`EventBridgePublisher` resends the entries PutEvents did not accept",
                _mutation(
                    "putevents-resend-off",
                    _off(
                        "sluice_shared.aws.events",
                        'if not response.get("FailedEntryCount"):',
                        "if True:",
                    ),
                ),
                (f"{FAULTS}::test_scenario_eventbridge_partial_failures_resend_and_reconcile",),
            ),
            Mechanism(
                "the records of a batch share PutEvents requests, each still failing alone: an "
                "entry refused for good or still refused once retries are spent fails only the "
                "record that published it",
                _mutation(
                    "shared-publish-fails-all",
                    _off(
                        "sluice_shared.aws.events",
                        "sorted({item[0] for item in pending if errors[item[0]] is None})",
                        "range(len(errors))",
                    ),
                    _off(
                        "sluice_shared.aws.events",
                        "        return [item for item in retry if errors[item[0]] is None]",
                        "        if rejected:\n"
                        "            errors[:] = [errors[next(iter(rejected))]] * len(errors)\n"
                        "        return [item for item in retry if errors[item[0]] is None]",
                    ),
                ),
                (
                    "tests/integration/shared/test_publish_round.py::"
                    "test_a_fact_the_bus_refuses_fails_only_its_own_record",
                ),
            ),
            Mechanism(
                "`sluice dlq redrive` resends the failed `SendMessageBatch` entries alone",
                _mutation(
                    "redrive-resend-off",
                    _off(
                        "sluice.commands.dlq",
                        "        return bool(pending)",
                        "        return False",
                    ),
                ),
                (f"{RECOVERY}::test_dlq_redrive_partial_send_failures_resend_only_failed_entries",),
            ),
        ),
    ),
    Promise(
        8,
        "A poison message fails alone and reaches the DLQ after exactly `maxReceiveCount` "
        "deliveries",
        (
            Mechanism(
                "per-record `batchItemFailures`",
                _mutation(
                    "batch-fails-whole",
                    _off(
                        SQS,
                        '{"itemIdentifier": r.message_id} for r in results if r.outcome is '
                        "Outcome.FAILED",
                        '{"itemIdentifier": r.message_id} for r in results if any(x.outcome is '
                        "Outcome.FAILED for x in results)",
                    ),
                ),
                (
                    "tests/unit/shared/test_shared_runtime.py::"
                    "test_process_sqs_batch_transient_error_reports_only_that_record",
                    f"{MESSAGES}::test_scenario_poison_fails_alone_reaches_dlq_after_max_receives_"
                    "then_redrive_completes",
                ),
            ),
        ),
    ),
    Promise(
        9,
        "A handler error or an invalid `itemIdentifier` retries the whole batch, still exactly "
        "once",
        (
            Mechanism(
                "the runtime raises for a malformed batch instead of answering invalid "
                "identifiers (Lambda's whole-batch rule is modelled by the pump)",
                _mutation(
                    "malformed-batch-accepted",
                    _off(
                        SQS,
                        "    for index, record in enumerate(records):\n"
                        '        message_id = record.get("messageId")',
                        "    for index, record in enumerate([]):\n"
                        '        message_id = record.get("messageId")',
                    ),
                ),
                (
                    "tests/unit/shared/test_shared_runtime.py::"
                    "test_process_sqs_batch_malformed_event_raises_instead_of_bad_identifiers",
                ),
            ),
        ),
        also="`test_scenario_invalid_item_identifier_or_handler_error_retries_whole_batch`",
    ),
    Promise(
        10,
        "An unknown contract version is parked at once, with the reason, never retried",
        (
            Mechanism(
                "registry → `ContractError` → parked in the DLQ with `sluice-reason-code`",
                _mutation(
                    "poison-retried",
                    _off(
                        SQS,
                        "        code = reason_code_of(exc)\n        reason = str(exc)",
                        "        return RecordResult(message_id, Outcome.FAILED, "
                        "reason_code_of(exc))\n        code = reason_code_of(exc)\n"
                        "        reason = str(exc)",
                    ),
                ),
                (f"{MESSAGES}::test_scenario_unknown_contract_version_is_parked_with_reason",),
            ),
        ),
    ),
    Promise(
        11,
        "A spoofed event has no side effect",
        (
            Mechanism(
                "every stage takes what it acts on (dataset, raw object, staging prefixes, "
                "recorded counts) from the file's ledger record; an event that disagrees is "
                "refused before any write (`event_ledger_mismatch`)",
                _mutation(
                    "event-trusted-over-ledger",
                    _off(STAGES, "    if differences:\n", "    if False:\n"),
                ),
                (
                    "tests/unit/reliability/test_event_ledger_mismatch.py::"
                    "test_validate_refuses_an_ingested_event_that_disagrees_with_the_ledger",
                    f"{REL}/test_spoof_scenarios.py::"
                    "test_scenario_forged_ingested_event_naming_another_dataset_is_refused",
                    f"{REL}/test_spoof_scenarios.py::"
                    "test_scenario_forged_validated_event_with_another_staging_prefix_is_refused",
                ),
            ),
            Mechanism(
                "a claim without a read (the fact carries the record its producer left) is "
                "conditional on every field of the stored record being that record's: a forged "
                "fact whose copied record agrees with it claims nothing, and the read refuses it",
                _mutation(
                    "claim-assumed-inexact",
                    _off(
                        LEDGER,
                        "        if exact:\n            condition += _exact_condition(",
                        "        if False:\n            condition += _exact_condition(",
                    ),
                ),
                (
                    "tests/integration/shared/test_port_contract_ledger.py::"
                    "test_ledger_transition_assumed_writes_nothing_when_any_field_differs",
                    f"{REL}/test_spoof_scenarios.py::"
                    "test_scenario_forged_ingested_event_naming_another_dataset_is_refused"
                    "[with_snapshot]",
                ),
            ),
            Mechanism(
                "rows a fact carries inline (a small file, v3) are used only when their sha256 is "
                "the one their producer recorded in the ledger with its counts",
                _mutation(
                    "inline-rows-unchecked",
                    _off(
                        "sluice_transform.domain",
                        '            found["inline.sha256"] = (inline.sha256, '
                        "record.validated_sha256)",
                        '            found["inline.sha256"] = (inline.sha256, inline.sha256)',
                    ),
                ),
                (
                    "tests/unit/services/test_inline_rows.py::"
                    "test_inline_rows_other_than_the_recorded_ones_are_refused_unwritten",
                ),
            ),
            Mechanism(
                "ingest reads only the raw bucket (`unexpected_bucket`)",
                _mutation(
                    "ingest-any-bucket",
                    _off(INGEST, "    if created.bucket != settings.raw_bucket:", "    if False:"),
                ),
                (
                    f"{MESSAGES}::test_scenario_spoofed_event_has_no_side_effect"
                    "[ingest-unexpected_bucket]",
                ),
            ),
            Mechanism(
                "the EventBridge source must match the envelope's (`contract_type_mismatch`)",
                _mutation(
                    "source-unchecked",
                    _off(
                        "contracts.registry",
                        "    if source is not None and source != envelope.source:",
                        "    if False:",
                    ),
                ),
                (
                    f"{MESSAGES}::test_scenario_spoofed_event_has_no_side_effect"
                    "[validate-contract_type_mismatch]",
                ),
            ),
            Mechanism(
                "a fact about a file the ledger never registered is poison (`unknown_file`)",
                _mutation(
                    "unknown-file-ignored",
                    _off(
                        STAGES,
                        "    if record is None:\n        raise UnknownFileError",
                        "    if False:\n        raise UnknownFileError",
                    ),
                    _off(STAGES, "        if stale.current is None:", "        if False:"),
                ),
                (
                    f"{MESSAGES}::test_scenario_spoofed_event_has_no_side_effect"
                    "[validate-unknown_file]",
                ),
            ),
        ),
    ),
    Promise(
        12,
        "Notifications of object versions out of order: the newest version wins",
        (
            Mechanism(
                "with a sequencer in the notification, the ledger registration is conditional on "
                "no later sequencer of the key having been registered (one transaction, no read "
                "of the object) and drops older ones as `superseded`",
                _mutation(
                    "older-sequencer-registered",
                    _off(
                        LEDGER,
                        '"ConditionExpression": "attribute_not_exists(#pk) OR #seq <= :seq",',
                        '"ConditionExpression": "attribute_not_exists(#pk) OR #seq <= :seq OR '
                        '#seq > :seq",',
                    ),
                ),
                (
                    "tests/integration/shared/test_port_contract_ledger.py::"
                    "test_ledger_register_older_sequencer_of_a_key_is_superseded[dynamodb]",
                    f"{MESSAGES}::"
                    "test_scenario_older_version_notified_after_newer_is_superseded_without_a_head",
                ),
            ),
            Mechanism(
                "without one (a replay, an ambiguous key), ingest compares the notified version "
                "with the object's current one (HEAD) and drops older ones as `superseded`",
                _mutation(
                    "older-version-processed",
                    _off(
                        INGEST,
                        "        if created.version_id and info.version_id and info.version_id != "
                        "created.version_id:",
                        "        if False:",
                    ),
                ),
                (
                    "tests/unit/reliability/test_ingest_guards.py::"
                    "test_ingest_older_version_notified_after_newer_is_superseded",
                    f"{MESSAGES}::test_scenario_object_versions_out_of_order_newest_version_wins"
                    "[reverse]",
                ),
            ),
        ),
    ),
    Promise(
        13,
        "Every DLQ message is explained",
        (
            Mechanism(
                "parked messages carry `sluice-reason-code`/`sluice-reason`",
                _mutation(
                    "park-without-reason",
                    _off(
                        "sluice_shared.aws.sqs",
                        '            "MessageAttributes": {',
                        '            "MessageAttributes": {} and {',
                    ),
                ),
                (f"{MESSAGES}::test_scenario_unknown_contract_version_is_parked_with_reason",),
            ),
            Mechanism(
                "the checker flags any other DLQ message whose file did not fail",
                _mutation(
                    "checker-ignores-unexplained",
                    _off(
                        "sluice.verify",
                        'explained = bool(reason) or status in ("FAILED", "QUARANTINED")',
                        "explained = True",
                    ),
                ),
                (
                    f"{MESSAGES}::test_scenario_poison_fails_alone_reaches_dlq_after_max_receives_"
                    "then_redrive_completes",
                ),
            ),
        ),
    ),
    Promise(
        14,
        "Operators can recover without duplicating outputs",
        (
            Mechanism(
                "`sluice replay` resets the ledger record (a `REPLAY` history step), clears the "
                "manifest, quarantine and staging, and re-notifies the same identity; outputs "
                "are overwritten in place",
                _mutation(
                    "replay-reset-off",
                    _off("sluice.commands.replay", "        self._reset(current)\n", ""),
                ),
                (f"{RECOVERY}::test_replay_cli_reruns_file_output_identical_and_reconciled",),
            ),
        ),
        also="`sluice dlq redrive` (promise 7), `tests/reliability/test_recovery_tools.py`",
    ),
    Promise(
        15,
        "The readers and validator account for every record of any input",
        (
            Mechanism(
                "streaming validation counts every record read; bad rows are quarantined with a "
                "reason",
                _mutation(
                    "bad-rows-uncounted",
                    _off(
                        "sluice_shared.datapath.validate",
                        "        self.counts.rows_in += n_records\n",
                        "        self.counts.rows_in += len(rows)\n",
                    ),
                ),
                (
                    "tests/unit/reliability/test_validate_accounting_properties.py::"
                    "test_validate_any_mix_of_records_accounts_for_every_row_at_any_block_size",
                ),
            ),
        ),
        also="`fuzz/fuzz_readers.py` (atheris, `make fuzz`)",
    ),
    Promise(
        16,
        "A full ephemeral disk (`ENOSPC` in /tmp) is an outcome, not a retry loop: the message is "
        "parked after one delivery with `ephemeral_storage_exhausted` (place, size, free space in "
        "the reason); a batch item is caught as poison",
        (
            Mechanism(
                "`sluice_shared.scratch`: a disk-full `OSError` inside a unit of work becomes "
                "`EphemeralStorageExhausted` (a `PoisonInputError`)",
                _mutation(
                    "disk-full-not-poison",
                    _off(
                        "sluice_shared.scratch",
                        "        full = storage_exhausted(exc)\n        if full is None:",
                        "        full = storage_exhausted(exc)\n        if True:",
                    ),
                ),
                (
                    f"{REL}/test_storage_scenarios.py::"
                    "test_scenario_disk_full_parks_the_message_with_the_reason[validate]",
                ),
            ),
        ),
    ),
    Promise(
        17,
        "A message that reappears while its first attempt still runs (a visibility timeout "
        "shorter than the processing) is processed once",
        (
            Mechanism(
                "the manifest is written once per run (`If-None-Match: *`): a late output "
                "attempt leaves it, and the published fact, unchanged",
                _mutation(
                    "manifest-overwritten",
                    _off(
                        "sluice_output.domain",
                        "    if await deps.objects.put_bytes_if_absent(",
                        "    if not await deps.objects.put_bytes(",
                    ),
                ),
                (f"{TIMING}::{REAPPEARS}[output]",),
            ),
        ),
        also="the claim lets the second attempt in and per-attempt staging (promise 5); "
        f"`{REAPPEARS}` for validate and transform",
    ),
    Promise(
        18,
        "A key overwritten while its first version is processed: each version once, from its "
        "own bytes, or the older one fails when its bytes are gone",
        (
            Mechanism(
                "file id per object version; validate reads the raw object by version id",
                _mutation(
                    "raw-read-ignores-version",
                    _off(
                        "sluice_validate.domain",
                        "            version_id=claimed.version_id,\n",
                        "            version_id=None,\n",
                    ),
                ),
                (f"{TIMING}::{OVERWRITTEN}[validate]",),
            ),
            Mechanism(
                "where the version is `null` (versioning off or suspended), validate reads by "
                "ETag (`If-Match`): an overwritten object is `object_not_found`, never the newer "
                "bytes",
                _mutation(
                    "raw-read-ignores-etag",
                    _off(
                        "sluice_validate.domain",
                        "            etag=claimed.etag if claimed.version_id is None else None,\n",
                        "            etag=None,\n",
                    ),
                ),
                (f"{TIMING}::{OVERWRITTEN}[unversioned-validate]",),
            ),
        ),
    ),
    Promise(
        19,
        "Workers whose clocks disagree: a file's history in time order is its version order, and "
        "no completion precedes the object's creation (no negative end-to-end latency)",
        (
            Mechanism(
                "`sluice_shared.clock.not_before`: a transition is stamped after the step before "
                "it; output's completion time is not before the object's creation or the last step",
                _mutation(
                    "clock-unguarded",
                    _off(
                        "sluice_shared.clock",
                        "    return max((moment, *earliest))",
                        "    return moment",
                    ),
                ),
                (
                    f"{TIMING}::test_scenario_clock_skew_between_workers_history_in_version_order_"
                    "no_negative_latency",
                ),
            ),
        ),
    ),
    Promise(
        20,
        "A dataset is published without a deploy and used only as published: a new dataset is "
        "seen by its first file, and a contract file altered after publishing is refused "
        "(`contract_invalid`), never replaced by another copy",
        (
            Mechanism(
                "`sluice_shared.published_contracts`: each file is checked against the sha256 "
                "of the manifest",
                _mutation(
                    "published-contract-unchecked",
                    _off(
                        PUBLISHED,
                        "                    if got != digest:",
                        "                    if False:",
                    ),
                ),
                (
                    f"{PUBLISHED_TESTS}::test_tampered_file_is_refused_as_contract_invalid",
                    "tests/e2e/test_iam_roles.py::"
                    "test_tampered_published_contract_quarantines_the_file_as_contract_invalid",
                ),
            ),
            Mechanism(
                "a dataset or version a warm function has not seen makes it read the manifest "
                "again at once",
                _mutation(
                    "published-contract-miss-not-refreshed",
                    _off(
                        PUBLISHED,
                        "            self._refresh(force=True)\n",
                        "            raise\n",
                    ),
                ),
                (f"{PUBLISHED_TESTS}::test_new_dataset_is_seen_by_a_warm_catalog_at_once",),
            ),
            Mechanism(
                "`sluice_shared.stages.load_lookup_tables`: transform and the batch path's "
                "run-bucket join the lookup tables of the catalog the contract came from",
                _mutation(
                    "published-lookups-ignored",
                    _off(
                        STAGES,
                        "    catalog = contracts if isinstance(contracts, DatasetCatalog)"
                        " else None",
                        "    catalog = None",
                    ),
                ),
                (
                    "tests/integration/batch/test_batch_handlers.py::"
                    "test_run_bucket_joins_the_published_lookup_table_not_the_packaged_one",
                ),
            ),
        ),
    ),
    Promise(
        21,
        "A consumer whose rule still matches an older major of `file.validated` or "
        "`file.transformed` receives every file's fact, small files included",
        (
            Mechanism(
                "a producer carries a small file's rows inline (v3 only) only when no enabled rule "
                "of the bus delivers an older major without the newest; otherwise it stages them "
                "and publishes every major (`sluice_shared.subscribers`; unknown counts as such "
                "a rule)",
                _mutation(
                    "older-major-subscribers-ignored",
                    _off(
                        "sluice_shared.subscribers",
                        "    return 0 if await subscribers.present(fact) else max_bytes",
                        "    return max_bytes",
                    ),
                ),
                (
                    "tests/unit/services/test_inline_rows.py::"
                    "test_a_small_file_with_an_older_major_subscriber_is_staged_and_published_in_every_major",
                    f"{REL}/test_older_major_scenarios.py::"
                    "test_scenario_older_major_subscriber_receives_a_small_files_facts",
                ),
            ),
            Mechanism(
                "rules the producer cannot list or test (access denied, throttled, timed out) "
                "count as an older-major subscriber until the next check: it stages",
                _mutation(
                    "older-major-subscribers-unknown-inline",
                    _off(
                        "sluice_shared.subscribers",
                        '"retry_in_s": self.ttl_s},\n            )\n            return True',
                        '"retry_in_s": self.ttl_s},\n            )\n            return False',
                    ),
                ),
                (
                    "tests/unit/shared/test_legacy_subscribers.py::"
                    "test_legacy_unknown_answer_counts_as_a_legacy_subscriber_and_warns_once",
                    "tests/integration/shared/test_eventbridge_rules.py::"
                    "test_legacy_unreadable_rules_count_as_a_legacy_subscriber",
                ),
            ),
        ),
    ),
)


def mutations() -> dict[str, tuple[Promise, Mechanism]]:
    """Every mutation by name, with its promise and mechanism. Raises ValueError for a name
    used twice."""
    found: dict[str, tuple[Promise, Mechanism]] = {}
    for promise in PROMISES:
        for mechanism in promise.mechanisms:
            name = mechanism.mutation.name
            if name in found:
                raise ValueError(f"mutation {name} is registered twice")
            found[name] = (promise, mechanism)
    return found


def mutation_named(name: str) -> Mutation:
    """The registered mutation called `name`. Raises KeyError for an unknown one."""
    try:
        return mutations()[name][1].mutation
    except KeyError:
        raise KeyError(f"no mutation named {name!r}") from None
