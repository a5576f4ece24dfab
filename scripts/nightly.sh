#!/usr/bin/env bash
# The nightly, one step per call (.github/workflows/nightly.yml calls the steps in order), and the whole of it as a
# CPU dry run (`bash scripts/nightly.sh dry-run`, run by tests/test_nightly.py in CI).
#
#   plan [--model M]...        every matrix job's expected wall-clock and memory; the matrix (GITHUB_OUTPUT)
#   announce                   this job's plan (from $MATRIX_JSON), printed before it starts
#   lock                       `lalm-bench lock` (hub access, $HF_TOKEN for gated checkpoints); the lock -> artifacts
#   setup-torch                a CUDA torch before scripts/install.sh (which keeps an installed torch)
#   check MODEL                the pre-flight; a failure stops the job before any claim
#   claims MODEL [PYTEST ARG]  pytest claims/ (JUnit); pipeline errors fail, verdicts against expectations do not
#   consistency MODEL          the same claims on ci and ci-alt; an errored pair fails, opposite verdicts are reported
#   cross-model MODEL...       the cross-model claims (T7) from the stored records
#   report [MODEL]...          Markdown + HTML report with the regression and false-alarm sections (never fails)
#   regression [MODEL]...      `lalm-bench baselines check`: exits non-zero on a regression or an unmatched baseline
#   dry-run [--from STEP]      every step above on CPU with the offline models at ci size (see dry_run below)
#
# Settings (environment): PROFILE, DTYPE, DEVICE, BATCH_SIZE, RESULTS, REPORT_DIR, BASELINES, ARTIFACTS.
# The nightly only reads baselines: LALM_BENCH_NIGHTLY=1 makes `lalm-bench baselines accept` refuse to run.
set -euo pipefail
cd "$(dirname "$0")/.."

export LALM_BENCH_NIGHTLY=1
PROFILE="${PROFILE:-full}"
DTYPE="${DTYPE:-bfloat16}"
DEVICE="${DEVICE:-cuda}"
BATCH_SIZE="${BATCH_SIZE:-8}"
RESULTS="${RESULTS:-results}"
REPORT_DIR="${REPORT_DIR:-reports/nightly}"
BASELINES="${BASELINES:-reports/baselines}"
ARTIFACTS="${ARTIFACTS:-artifacts}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
TORCH_CUDA_INDEX="${TORCH_CUDA_INDEX:-https://download.pytorch.org/whl/cu130}"
# The CLI as installed on a runner (scripts/install.sh installs this checkout); the dry run uses the checkout.
LALM=(lalm-bench)

RUN_OPTS=()
say() { printf '== nightly %s: %s\n' "$1" "$2"; }
die() { printf 'nightly %s: %s\n' "$1" "$2" >&2; exit 1; }
# The device, dtype and batch size every model-running command takes (read when a step runs: dry-run sets them).
run_opts() { RUN_OPTS=(--device "$DEVICE" --dtype "$DTYPE" --batch-size "$BATCH_SIZE"); }

step_plan() {
  say plan "profile $PROFILE, dtype $DTYPE; expected wall-clock per job (both templates)"
  local out=()
  if [ -n "${GITHUB_OUTPUT:-}" ]; then out=(--github-output "$GITHUB_OUTPUT"); fi
  "${LALM[@]}" nightly plan --profile "$PROFILE" --dtype "$DTYPE" --baselines "$BASELINES" "${out[@]}" "$@"
}

step_announce() {
  [ -n "${MATRIX_JSON:-}" ] || die announce "MATRIX_JSON (this job's matrix entry) is not set"
  python - <<'PY'
import json, os
job = json.loads(os.environ["MATRIX_JSON"])
parts = ", ".join(f"{k} {v:.0f} min" for k, v in job["breakdown"].items())
print(f"== nightly job {job['model']} [{job['shard']}]: expected {job['expected_minutes']:.0f} min ({parts}) "
      f"of {job['timeout_minutes']} min; {job['memory']}; {job['gpus']} GPU(s)")
for note in job.get("notes", []):
    print(f"   note: {note}")
PY
}

step_lock() {
  say lock "resolving hub revisions (needs hub access; HF_TOKEN for gated checkpoints)"
  [ -n "${HF_TOKEN:-}" ] || echo "note: HF_TOKEN is empty: gated checkpoints (Ultravox's Llama) will not resolve" >&2
  "${LALM[@]}" lock
  mkdir -p "$ARTIFACTS"
  cp benchmark/models/hub_lock.json "$ARTIFACTS/hub_lock.json"
}

step_setup_torch() {
  if python -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; then
    say setup-torch "keeping the installed CUDA torch $(python -c 'import torch; print(torch.__version__)')"
  else
    say setup-torch "installing torch==$TORCH_VERSION from $TORCH_CUDA_INDEX"
    python -m pip install --quiet --index-url "$TORCH_CUDA_INDEX" "torch==$TORCH_VERSION"
  fi
  python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || die setup-torch "torch $(python -c 'import torch; print(torch.__version__)') sees no CUDA device on this runner"
}

step_check() {
  local model="${1:?check needs a model}"
  mkdir -p "$ARTIFACTS"
  say check "$model ($DEVICE, $DTYPE, batch $BATCH_SIZE)"
  run_opts
  # pipefail (set above): a failed pre-flight fails this step although tee succeeds.
  "${LALM[@]}" check "$model" "${RUN_OPTS[@]}" --json | tee "$ARTIFACTS/check-$model.json"
}

step_claims() {
  local model="${1:?claims needs a model}"
  shift
  local selection=("$@")
  [ "${#selection[@]}" -gt 0 ] || selection=(claims/)
  local junit="$ARTIFACTS/junit-$model-${SHARD:-all}.xml"
  mkdir -p "$ARTIFACTS"
  say claims "$model: ${selection[*]} (profile $PROFILE)"
  local rc=0
  run_opts
  python -m pytest -p no:cacheprovider -m claim "${selection[@]}" --profile "$PROFILE" --model "$model" "${RUN_OPTS[@]}" \
    --results "$RESULTS" --junitxml "$junit" -q -rfE || rc=$?
  # 0: passed; 1: some test failed or errored (the JUnit file tells which); anything else: pytest itself failed.
  [ "$rc" -le 1 ] || die claims "pytest exited $rc on $model"
  "${LALM[@]}" nightly junit "$junit"
}

step_consistency() {
  local model="${1:?consistency needs a model}"
  mkdir -p "$ARTIFACTS"
  say consistency "$model: ci against ci-alt (other sentences and voices), per claim, template and variant"
  run_opts
  # Exit 1: a pipeline error on either side; 2: a record missing. Opposite verdicts are printed, not gating: two
  # probe samples disagree by chance about as often as the rules' false-finding rate (README, "Nightly").
  "${LALM[@]}" nightly consistency --model "$model" --profile ci --against ci-alt "${RUN_OPTS[@]}" \
    --results "$RESULTS" --markdown "$ARTIFACTS/consistency-$model.md"
}

step_cross_model() {
  [ "$#" -ge 2 ] || die cross-model "needs at least two models"
  local args=() model
  for model in "$@"; do args+=(--model "$model"); done
  mkdir -p "$ARTIFACTS"
  say cross-model "$* (from the stored records; no model loaded unless its latents are missing)"
  local rc=0 plugins=()
  if [ -n "${PYTEST_PLUGIN:-}" ]; then plugins=(-p "$PYTEST_PLUGIN"); fi
  run_opts
  python -m pytest -p no:cacheprovider "${plugins[@]}" claims/ -m cross_model --profile "$PROFILE" \
    "${args[@]}" "${RUN_OPTS[@]}" --results "$RESULTS" --junitxml "$ARTIFACTS/junit-cross-model.xml" -q -rfE \
    || rc=$?
  [ "$rc" -le 1 ] || die cross-model "pytest exited $rc"
  "${LALM[@]}" nightly junit "$ARTIFACTS/junit-cross-model.xml"
}

step_report() {
  local args=() model
  for model in "$@"; do args+=(--model "$model"); done
  say report "$RESULTS -> $REPORT_DIR (regression against $BASELINES)"
  "${LALM[@]}" report "$RESULTS" --out "$REPORT_DIR" --baselines "$BASELINES" --profile "$PROFILE" \
    --dtype "$DTYPE" "${args[@]}"
}

step_regression() {
  local args=() model
  for model in "$@"; do args+=(--model "$model"); done
  say regression "records of $PROFILE/$DTYPE against the committed baselines in $BASELINES"
  "${LALM[@]}" baselines check "$RESULTS" --baselines "$BASELINES" --profile "$PROFILE" --dtype "$DTYPE" \
    "${args[@]}"
}

# The dry run: the nightly's steps in order on CPU, float32, the ci profile. Pre-flight, claims and consistency on
# gemma-3-270m-q4km (real offline weights; every claim is evaluated, the speech ones answer n/a); cross-model claims
# on two tiny real-class LALMs (tests/nightly_tiny_lalms.py); report; regression against the committed baselines
# (reports/baselines/ci/float32). Lock and CUDA setup need the hub and a GPU and are skipped, saying so.
DRY_MODELS=(gemma-3-270m-q4km)
DRY_CROSS=(qwen2-audio-tiny-synthetic ultravox-0.5-llama-tiny-synthetic)

dry_run() {
  local from="plan"
  if [ "${1:-}" = "--from" ]; then from="${2:?--from needs a step}"; fi
  PROFILE=ci DTYPE=float32 DEVICE=cpu BATCH_SIZE=8
  # This checkout's code, whatever `lalm-bench` on PATH was installed from.
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  LALM=(python -m benchmark.cli.main)
  local steps=(plan lock setup-torch check claims consistency cross-model report regression) started=0 step
  for step in "${steps[@]}"; do
    [ "$step" = "$from" ] && started=1
    [ "$started" = 1 ] || continue
    case "$step" in
      plan) GITHUB_OUTPUT="" step_plan --model gemma-3-270m-q4km --model qwen2-audio-7b --model voxtral-mini-3b ;;
      lock) say lock "skipped in the dry run (no hub here); the nightly uploads the lock as an artifact" ;;
      setup-torch) say setup-torch "skipped in the dry run (CPU)" ;;
      check) step_check "${DRY_MODELS[0]}" ;;
      claims) step_claims "${DRY_MODELS[0]}" ;;
      consistency) step_consistency "${DRY_MODELS[0]}" ;;
      cross-model) PYTEST_PLUGIN=tests.nightly_tiny_lalms step_cross_model "${DRY_CROSS[@]}" ;;
      report) step_report "${DRY_MODELS[@]}" "${DRY_CROSS[@]}" ;;
      regression) step_regression "${DRY_MODELS[@]}" "${DRY_CROSS[@]}" ;;
    esac
  done
  [ "$started" = 1 ] || die dry-run "no step named $from"
  say dry-run "done"
}

main() {
  local step="${1:-}"
  [ -n "$step" ] || die usage "give a step: plan announce lock setup-torch check claims consistency cross-model report regression dry-run"
  shift
  case "$step" in
    plan) step_plan "$@" ;;
    announce) step_announce ;;
    lock) step_lock ;;
    setup-torch) step_setup_torch ;;
    check) step_check "$@" ;;
    claims) step_claims "$@" ;;
    consistency) step_consistency "$@" ;;
    cross-model) step_cross_model "$@" ;;
    report) step_report "$@" ;;
    regression) step_regression "$@" ;;
    dry-run) dry_run "$@" ;;
    *) die usage "unknown step $step" ;;
  esac
}

main "$@"
