#!/usr/bin/env bash
# Offline validation of everything under deploy/ and orchestration/ (make check-templates).
# Expects the project venv (.venv) and the tool environments under .tools/ (the Makefile
# installs them). Prints the time of each step and the total.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
TOOLS=.tools
TEMPLATES=(deploy/platform.yaml deploy/services/ingest.yaml deploy/services/validate.yaml
           deploy/services/transform.yaml deploy/services/output.yaml deploy/orchestration.yaml)
export SAM_CLI_TELEMETRY=0
# The SAM CLI and the translator want a region; no credentials are needed or used.
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }
start_all=$EPOCHREALTIME
step() {
  local name=$1; shift
  local start=$EPOCHREALTIME
  echo "== check-templates: $name"
  "$@"
  echo "== check-templates: $name ok ($(elapsed "$start"))"
}

# sam validate takes one template per run, and each run is CPU-bound (startup + cfn-lint): run
# one per core side by side.
sam_validate() {
  printf '%s\n' "${TEMPLATES[@]}" |
    xargs -P "$(nproc)" -I{} "$TOOLS/sam/bin/sam" validate --lint --template {}
}

# The policy tests need nothing the steps below produce: they run beside them from the start
# (one process; the steps are single-threaded but for sam validate), reported where they were.
policy_log=$(mktemp)
"$BIN/pytest" -q tests/policy >"$policy_log" 2>&1 &
policy_pid=$!
# A failing step ends the script: the policy tests with it.
trap 'kill "$policy_pid" 2>/dev/null || true; rm -f "$policy_log"' EXIT

step "sam validate --lint" sam_validate
step "cfn-lint" "$BIN/cfn-lint" "${TEMPLATES[@]}"
step "schema registry section up to date" "$BIN/python" deploy/gen_schemas.py --check
step "query catalog section up to date" "$BIN/python" deploy/gen_catalog.py --check
step "render ASL with DefinitionSubstitutions" "$BIN/python" -m tools.templates render-asl --out build/asl
step "statelint + asl-validator + local engine" "$BIN/python" -m tools.lint_asl \
  --statelint "$TOOLS/statelint/bin/statelint" \
  --asl-validator "$TOOLS/asl-validator/node_modules/.bin/asl-validator" build/asl/*.asl.json
step "conformance corpus: statelint + asl-validator" "$BIN/python" -m tests.conformance.crosscheck \
  --statelint "$TOOLS/statelint/bin/statelint" \
  --asl-validator "$TOOLS/asl-validator/node_modules/.bin/asl-validator"
step "translate SAM -> CloudFormation" "$BIN/python" -m tools.templates translate --out build/translated
step "checkov (skips justified in deploy/checkov.yaml)" \
  "$TOOLS/checkov/bin/checkov" --directory build/translated --config-file deploy/checkov.yaml
echo "== check-templates: policy tests (started with the first step)"
waited=$EPOCHREALTIME
policy_status=0
wait "$policy_pid" || policy_status=$?
cat "$policy_log"
if ((policy_status != 0)); then
  echo "== check-templates: policy tests FAILED (exit $policy_status)"
  exit "$policy_status"
fi
echo "== check-templates: policy tests ok (waited $(elapsed "$waited") after the other steps)"

echo "== check-templates: all ok ($(elapsed "$start_all"))"
