#!/usr/bin/env bash
# The prepared device check (make gpu-check): every CUDA test, the benchmark suite at paper scale in both
# modes, and a profile of one fast training step and one 50-step sampling run, on one GPU, in under
# 8 minutes.  Installs nothing and reaches no network: it runs from the tree with PYTHONPATH set to the
# repository root, with the python3 it finds (PYTHON=... to choose another).
#
#   bash benchmarks/device_check.sh [--overwrite] [--keep-logs]
#   IDDPM_DEVICE_DRY_RUN=1 bash benchmarks/device_check.sh     # the CPU dry run CI runs (tiny configs)
#
# Environment: OUT (results folder, default ./gpu-check-out; must be empty unless --overwrite),
# PYTHON (default python3), IDDPM_DEVICE_DRY_RUN (1: CPU, tiny configurations, 1 benchmark round),
# IDDPM_CHECK_ONLY (space-separated step names to run; the others are listed as "not selected"),
# CAP_<step> (seconds; overrides that step's time cap, e.g. CAP_a_cuda_tests=120), CAP_SCALE (a whole
# factor on every default cap; default 1 on the device, 3 in the dry run, whose CPU may be shared),
# BENCH_MIN_ROUNDS / BENCH_MAX_TIME (pytest-benchmark rounds on the device; default 3 and 0.5 s).
#
# Each step runs under timeout(1) with its own cap (SIGINT, then SIGKILL 10 s later; the seconds a step
# leaves unused go to the next one) and its own log in $OUT/logs/<step>.log; a failing
# step does not stop the later ones. At the end $OUT holds summary.txt (one line per step: step, status,
# seconds), environment.json, benchmarks.json (+ benchmarks.md), profile.json, profile.txt and
# logs.tar.gz (the logs, junit reports and per-step JSON; the loose logs/ folder is removed unless
# --keep-logs, so $OUT stays within the 8 files the device tool brings back). Exit status 1 when any
# step failed or timed out, 2 on bad usage, 3 when a Python package is missing, 4 when there is no CUDA
# device outside the dry run.
set -uo pipefail

# The whole script is one { ... } block, so bash parses all of it before running any of it: editing the
# tree during a check cannot change the commands of the check in progress.
{

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

overwrite=0
keep_logs=0
for arg in "$@"; do
    case "$arg" in
        --overwrite) overwrite=1 ;;
        --keep-logs) keep_logs=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "device_check.sh: unknown argument '$arg' (allowed: --overwrite, --keep-logs, --help)" >&2; exit 2 ;;
    esac
done

fail_usage() { echo "device_check.sh: $*" >&2; exit 2; }
is_count() { case "$1" in '' | *[!0-9]*) return 1 ;; esac; }

# ---- every setting is checked before anything is written ----
PYTHON=${PYTHON:-python3}
DRY=${IDDPM_DEVICE_DRY_RUN:-0}
case "$DRY" in 0 | 1) ;; *) fail_usage "IDDPM_DEVICE_DRY_RUN must be 0 or 1, got '$DRY'" ;; esac
for tool in timeout tar "$PYTHON"; do
    command -v "$tool" >/dev/null || fail_usage "'$tool' not found on PATH"
done
STEPS=(a_cuda_tests b1_train_cifar10 b2_sample_loop b3_calc_bpd b4_train_imagenet64 b5_other_workloads b6_eval_and_data c_profile)
for name in ${IDDPM_CHECK_ONLY:-}; do
    case " ${STEPS[*]} " in
        *" $name "*) ;;
        *) fail_usage "IDDPM_CHECK_ONLY names an unknown step '$name' (steps: ${STEPS[*]})" ;;
    esac
done
CAP_SCALE=${CAP_SCALE:-$([ "$DRY" = 1 ] && echo 3 || echo 1)}
is_count "$CAP_SCALE" || fail_usage "CAP_SCALE must be a whole number, got '$CAP_SCALE'"
for name in imports "${STEPS[@]}"; do
    var="CAP_$name"
    [ -z "${!var:-}" ] || is_count "${!var}" || fail_usage "$var must be a whole number of seconds, got '${!var}'"
done

# results folder: absolute (the steps run from the repository root), empty unless --overwrite
OUT=${OUT:-./gpu-check-out}
mkdir -p -- "$OUT" || exit 2
OUT=$(cd -- "$OUT" && pwd)
# what this script writes, and nothing else, is removed by --overwrite
OWN_FILES=(summary.txt environment.json benchmarks.json benchmarks.md profile.json profile.txt logs.tar.gz)
if [ -n "$(ls -A -- "$OUT")" ]; then
    [ "$overwrite" -eq 1 ] || fail_usage "OUT '$OUT' is not empty (pass --overwrite to replace a previous check's files)"
    for name in "${OWN_FILES[@]}"; do rm -f -- "$OUT/$name"; done
    rm -rf -- "$OUT/logs"
fi
mkdir -p -- "$OUT/logs"

cd "$(dirname -- "${BASH_SOURCE[0]}")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export CI=true HYPOTHESIS_PROFILE=ci PYTHONDONTWRITEBYTECODE=1
PYTEST=("$PYTHON" -m pytest -v -rs -p no:cacheprovider)

if [ "$DRY" = 1 ]; then
    export IDDPM_BENCH_DEVICE=cpu IDDPM_BENCH_SCALE=tiny
    : "${OMP_NUM_THREADS:=1}"
    export OMP_NUM_THREADS
    BENCH_ROUNDS=(--benchmark-min-rounds=1 --benchmark-max-time=0)
    PROFILE_ARGS=(--device cpu --scale tiny)
else
    export IDDPM_BENCH_DEVICE=cuda IDDPM_BENCH_SCALE=paper
    BENCH_ROUNDS=(--benchmark-min-rounds="${BENCH_MIN_ROUNDS:-3}" --benchmark-max-time="${BENCH_MAX_TIME:-0.5}")
    PROFILE_ARGS=(--device cuda --scale paper)
fi

now() { "$PYTHON" -c 'import time; print(f"{time.time():.3f}")'; }

selected() {
    [ -z "${IDDPM_CHECK_ONLY:-}" ] && return 0
    case " $IDDPM_CHECK_ONLY " in *" $1 "*) return 0 ;; esac
    return 1
}

cap_for() { # step default: the step's cap in seconds (CAP_<step>, else CAP_SCALE x the default)
    local var="CAP_$1"
    echo "${!var:-$(($2 * CAP_SCALE))}"
}

# Seconds a finished step left unused under its cap; the next step that runs gets them on top of its own
# cap, so a quick step gives time to a slow one (a cold compile) and the check as a whole still never
# runs past the sum of the caps.
SPARE=0

# run_step NAME DEFAULT_CAP [record options...] -- command...
run_step() {
    local name=$1 cap
    cap=$(cap_for "$1" "$2")
    shift 2
    local record=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do record+=("$1"); shift; done
    shift
    if ! selected "$name"; then
        printf '{"step": "%s", "status": "not selected", "seconds": 0.0, "cap_s": %s, "detail": "IDDPM_CHECK_ONLY"}\n' \
            "$name" "$cap" >>"$OUT/logs/steps.jsonl"
        return
    fi
    cap=$((cap + SPARE))
    echo "== $name (cap ${cap} s): $*"
    local started ended rc began=$SECONDS
    started=$(now)
    # SIGINT first: pytest then still writes its junit report and the benchmarks it finished
    timeout -s INT -k 10 "$cap" "$@" >"$OUT/logs/$name.log" 2>&1
    rc=$?
    ended=$(now)
    SPARE=$((cap - (SECONDS - began)))
    [ "$SPARE" -gt 0 ] || SPARE=0
    "$PYTHON" -m benchmarks.device_check record --out "$OUT" --step "$name" --rc "$rc" --cap "$cap" \
        --started "$started" --ended "$ended" "${record[@]}"
    if [ "$rc" -ne 0 ]; then
        echo "-- last lines of logs/$name.log (exit status $rc):"
        tail -n 15 "$OUT/logs/$name.log" | cut -c1-240
    fi
}

# ---- 0. imports: every needed package and the tree itself, before anything else ----
dry_flag=()
[ "$DRY" = 1 ] && dry_flag=(--dry-run)
echo "== imports ($PYTHON, dry run: $DRY, OUT: $OUT)"
timeout -k 5 "$(cap_for imports 20)" "$PYTHON" -m benchmarks.device_check imports --out "$OUT" ${dry_flag[@]+"${dry_flag[@]}"} 2>&1 | tee "$OUT/logs/imports.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
    { echo "device check stopped before its steps: the imports check failed (exit status $rc)"
      cat "$OUT/logs/imports.log"; } >"$OUT/summary.txt"
    exit "$rc"
fi

# ---- a. every CUDA test (tests/ and properties/; skipped without CUDA, which the summary says) ----
run_step a_cuda_tests 85 --junit a_cuda_tests.xml --cuda-step -- \
    "${PYTEST[@]}" -m cuda tests properties --durations=15 --junitxml="$OUT/logs/a_cuda_tests.xml"

# ---- b. the benchmark suite, both modes (eager_fp32 first, then fast), one JSON per part ----
bench_step() { # name cap selection...
    local name=$1 cap=$2
    shift 2
    run_step "$name" "$cap" --junit "$name.xml" --bench-json "$name.json" --expect "logs/$name.json" -- \
        "${PYTEST[@]}" "$@" "${BENCH_ROUNDS[@]}" --benchmark-json="$OUT/logs/$name.json" \
        --junitxml="$OUT/logs/$name.xml"
}
bench_step b1_train_cifar10 65 benchmarks/test_train_step.py::test_train_step_cifar10
bench_step b2_sample_loop 70 benchmarks/test_sampling.py::test_sample_loop_50_steps_cifar10
bench_step b3_calc_bpd 35 benchmarks/test_calc_bpd.py
bench_step b4_train_imagenet64 50 benchmarks/test_train_step.py::test_train_step_imagenet64
bench_step b5_other_workloads 35 benchmarks/test_sampling.py::test_sample_step_cifar10 \
    benchmarks/test_unet_forward.py benchmarks/test_training_losses.py benchmarks/test_schedule_sampler.py
# Inception feature extraction (batch 500, 32 -> 299 px) and the data pipeline's images/s to the device
bench_step b6_eval_and_data 25 benchmarks/test_feature_extraction.py benchmarks/test_data_pipeline.py

# ---- c. one fast training step and one 50-step sampling run under torch.profiler ----
run_step c_profile 70 --expect profile.json --expect profile.txt --profile-json profile.json -- \
    "$PYTHON" -m benchmarks.profile_step --out "$OUT" "${PROFILE_ARGS[@]}"

# ---- summary (the last thing printed), then the logs packed into one archive ----
"$PYTHON" -m benchmarks.device_check summary --out "$OUT"
status=$?
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs || status=1
if [ "$keep_logs" -ne 1 ]; then
    rm -rf -- "$OUT/logs"
fi
exit "$status"
}
