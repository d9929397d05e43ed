# Thin aliases. Everything installs into .venv/ at the repository root from requirements.lock.
# Every lock carries hashes and installs with --require-hashes (`make locks` re-resolves them).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed
# pytest processes for make test, and mutations make test proves at once. One more than the 2
# cores here: many tests wait (visibility timeouts, polls, processes starting), and a third
# process fills those waits (pytest 357 -> 312 s, prove 64 -> 51 s on a quiet box; the CPU time
# is the same). Each test module stays on one worker.
TEST_WORKERS ?= 3

.PHONY: docs-figures bench-cold-start prove loadtest bench-events soak fuzz bench-memory bench-batch browser setup run test lint typecheck unit integration e2e policy bench check-templates iam-proof layer clean contracts-check contracts-generate contracts-package locks audit

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r tools/locks/uv.txt

$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(UV) pip install --quiet --compile-bytecode --require-hashes --python $(BIN)/python -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## The main job: the whole suite up locally, the sample datasets through it, a summary table.
run: setup
	$(BIN)/sluice local run --sample --fresh --keep-up

## The whole test suite (what CI runs). The checks before pytest are independent of each other
## (each needs only the venv or its own tool environment): they run two at a time, the longest
## (check-templates, then typecheck) first. pytest hands out the longest modules first
## (tests/durations.py; --no-loadscope-reorder keeps that order).
test:
	$(MAKE) --no-print-directory --jobs=2 --output-sync=target test-checks
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --ignore=tests/policy  # policy tests ran in check-templates
	$(BIN)/python -m tests.prove -j $(TEST_WORKERS)  # the suite just passed: now every mechanism switched off must fail it

.PHONY: test-checks
test-checks: setup check-templates typecheck lint contracts-check browser

## Every promise of docs/guarantees.md proved: each mechanism switched off (tests/prove) must fail
## a named test; --baseline first checks those tests pass unmutated.
prove: setup
	$(BIN)/python -m tests.prove --baseline

## Headless Chromium for the status-page test (Debian package; needs root, as CI and dev machines have).
browser:
	@command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell; }

## Event contracts: schemas fresh, golden examples parse and unchanged, additive within a major.
## Data contracts: every contract and lookup lints clean, compatible within its version.
contracts-check: setup
	$(BIN)/python -m contracts.tools check
	$(BIN)/sluice contracts check --datasets
	$(BIN)/sluice contracts check --path packages/sluice-contracts/examples/acme_inventory

contracts-generate: setup
	$(BIN)/python -m contracts.tools generate

## The event contracts as their own wheel (sluice-contracts, import name sluice_contracts), built
## offline from contracts/ with the project's hatchling: dist/sluice_contracts-*.whl.
contracts-package: setup
	$(UV) build --offline --no-build-isolation --wheel --python $(BIN)/python -o dist packages/sluice-contracts

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy contracts sluice services tests bench loadtests

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

e2e: setup
	$(BIN)/pytest -q tests/e2e

policy: setup
	$(BIN)/pytest -q tests/policy

# Tool environments for check-templates, each pinned by its lock file under tools/ and kept in
# .tools/ (git-ignored) until the lock changes. SAM CLI and checkov pin versions that conflict
# with the project's (aioboto3, moto), so each gets its own venv.
TOOLS := .tools
TOOL_PY ?= python3
CHECK_TOOLS := $(TOOLS)/sam/.installed $(TOOLS)/checkov/.installed \
	$(TOOLS)/statelint/.installed $(TOOLS)/asl-validator/.installed

## Offline validation of deploy/ and orchestration/: sam validate --lint, cfn-lint, statelint +
## asl-validator, checkov on the SAM-translated templates, tests/policy (tools/check_templates.sh).
check-templates: setup $(CHECK_TOOLS)
	bash tools/check_templates.sh

## The conformance corpus (tests/conformance/): each case through the local endpoint and on
## moto's interpreter, then its definition through statelint and asl-validator. `make test` runs
## both parts (the pytest run and check-templates).
.PHONY: conformance
conformance: setup $(TOOLS)/statelint/.installed $(TOOLS)/asl-validator/.installed
	$(BIN)/pytest -q -p no:cacheprovider tests/conformance
	$(BIN)/python -m tests.conformance.crosscheck --statelint $(TOOLS)/statelint/bin/statelint \
	  --asl-validator $(TOOLS)/asl-validator/node_modules/.bin/asl-validator

## Least privilege, necessity: remove each role statement in turn (a copy of deploy/), run the
## tests that exercise the role on a runtime provisioned from the copy, write the table in
## docs/security.md (tools/iam_proof.py; long, progress printed).
iam-proof: setup
	$(BIN)/python -m tools.iam_proof --reset

## The Lambda runtime layer for arm64 (build/layer/python, build/layer.zip) and its x86_64 twin.
layer: setup
	$(BIN)/python -m tools.layer build --zip

$(TOOLS)/%/.installed: tools/locks/%.txt | $(STAMP)
	rm -rf $(TOOLS)/$*
	$(UV) venv --quiet --python $(TOOL_PY) $(TOOLS)/$*
	$(UV) pip install --quiet --require-hashes --python $(TOOLS)/$*/bin/python -r $<
	touch $@

$(TOOLS)/asl-validator/.installed: tools/asl-validator/package.json tools/asl-validator/package-lock.json
	rm -rf $(TOOLS)/asl-validator
	mkdir -p $(TOOLS)/asl-validator
	cp tools/asl-validator/package.json tools/asl-validator/package-lock.json $(TOOLS)/asl-validator/
	cd $(TOOLS)/asl-validator && npm ci --no-audit --no-fund --silent
	touch $@

## Known vulnerabilities of every pinned package (pip-audit, its own tool environment): one line
## per package, OK / VULNERABLE / UNKNOWN; exit 1 when any is vulnerable, 2 when any could not be
## audited (needs the vulnerability service: pypi.org's JSON API, or AUDIT_SERVICE=osv).
## Not part of `make test`: it depends on a network service.
AUDIT_SERVICE ?= pypi
audit: setup $(TOOLS)/pip-audit/.installed
	$(BIN)/python -m tools.audit --service $(AUDIT_SERVICE)

## Re-resolve every lock with hashes (needs the package index). uv keeps the versions already
## pinned in each output file, so this adds hashes and new packages only; to move a pin, change
## pyproject.toml or tools/locks/<tool>.in (or pass --upgrade-package NAME via LOCK_ARGS).
LOCK_ARGS ?=
LAYER_TARGETS := aarch64-manylinux_2_28 x86_64-manylinux_2_28
LAYER_PYTHONS := 3.11 3.12 3.13
locks: $(BIN)/python
	$(UV) pip compile $(LOCK_ARGS) pyproject.toml --extra dev --extra bench --python-version 3.11 --generate-hashes -o requirements.lock
	$(UV) pip compile $(LOCK_ARGS) pyproject.toml --extra fuzz -c requirements.lock --python-version 3.12 --generate-hashes -o requirements-fuzz.lock
	for tool in uv sam checkov statelint pip-audit; do \
	  $(UV) pip compile $(LOCK_ARGS) tools/locks/$$tool.in --python-version 3.11 --generate-hashes -o tools/locks/$$tool.txt || exit 1; \
	done
	for platform in $(LAYER_TARGETS); do for python in $(LAYER_PYTHONS); do \
	  $(UV) pip compile $(LOCK_ARGS) pyproject.toml -c requirements.lock --python-version $$python --python-platform $$platform --only-binary :all: --generate-hashes -o tools/locks/layer/$$platform-py$$python.txt || exit 1; \
	done; done

## README's performance, memory, batch, cold-start and event figures, generated from the bench
## RESULTS files (tools/docs_figures.py); make test fails when they disagree (tests/unit/docs).
docs-figures: setup
	$(BIN)/python -m tools.docs_figures

## Cold starts per real-time function from fresh interpreters (bench/cold_start.py).
bench-cold-start: setup
	$(BIN)/python -m bench.cold_start --write

bench: setup
	$(UV) pip install --quiet --compile-bytecode --require-hashes --python $(BIN)/python -r requirements.lock
	$(BIN)/python -m bench.datapath

## moto SQS receive/send cost at depth, with and without the local runtime's patch.
bench-local: setup
	$(BIN)/python -m bench.local_sqs

## Fault-injection soak: ten seeds, every fault at once (longer than the PR tier).
soak: setup
	$(BIN)/pytest -q -p no:cacheprovider -m soak tests/reliability

## Coverage-guided fuzzing of the CSV/JSONL readers and validator (atheris), bounded in time.
## Runs in its own Python 3.12 environment (see the `fuzz` extra in pyproject.toml for why).
FUZZ_SECONDS ?= 60
FUZZ_PY ?= $(shell for p in $$HOME/.pyenv/versions/3.12*/bin/python3.12 python3.12; do "$$p" -c "" >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
FUZZ_VENV := .venv-fuzz

$(FUZZ_VENV)/.installed: requirements-fuzz.lock pyproject.toml
	@test -n "$(FUZZ_PY)" || { echo "make fuzz needs Python 3.12 (set FUZZ_PY=/path/to/python3.12)"; exit 2; }
	$(FUZZ_PY) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r tools/locks/uv.txt
	$(FUZZ_VENV)/bin/uv pip install --quiet --require-hashes --python $(FUZZ_VENV)/bin/python -r requirements-fuzz.lock
	$(FUZZ_VENV)/bin/uv pip install --quiet --python $(FUZZ_VENV)/bin/python --no-deps -e .
	touch $@

fuzz: $(FUZZ_VENV)/.installed
	mkdir -p .fuzz/corpus/orders .fuzz/corpus/sensor_readings
	$(FUZZ_VENV)/bin/python fuzz/fuzz_readers.py .fuzz/corpus/orders fuzz/corpus/orders -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=4096 -artifact_prefix=.fuzz/
	SLUICE_FUZZ_DATASET=sensor_readings $(FUZZ_VENV)/bin/python fuzz/fuzz_readers.py .fuzz/corpus/sensor_readings fuzz/corpus/sensor_readings -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=4096 -artifact_prefix=.fuzz/

## The data path on a 2 GB CSV: peak RSS (target < 300 MB).
bench-memory: setup
	$(BIN)/python -m bench.datapath --memory

## A large CSV through the batch path on the local runtime: 1 vs 2 workers, identical output.
bench-batch: setup
	$(BIN)/python -m bench.batch_path

## Locust against `sluice local up` (headless, bounded), then drain, reconcile and report.
loadtest: setup
	$(BIN)/python -m loadtests.run

## Small files/s and custom events/s through the local suite, per hop.
bench-events: setup
	$(BIN)/python -m bench.event_path

clean:
	rm -rf $(VENV) $(FUZZ_VENV) .fuzz .mypy_cache .ruff_cache .pytest_cache .aws-sam build
