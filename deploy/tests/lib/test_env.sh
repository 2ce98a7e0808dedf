# shellcheck shell=bash
# Helpers for the deploy tests: binaries, tiny data, a tiny experiment, checks.
# Source after deploy/lib/common.sh.

# spk_skip MESSAGE: ends the test as skipped (exit 0) with a clear message.
spk_skip() { echo "SKIP: $*" >&2; exit 0; }

# spk_test_bins: sets COORDINATOR and WORKER. Uses SPIKECV_BIN_DIR when set,
# otherwise builds both binaries (dev profile, sharing cargo's cache with
# `cargo test`) into ${CARGO_TARGET_DIR:-target}/debug.
spk_test_bins() {
  local repo dir
  repo="$(spk_repo_root)"
  if [ -n "${SPIKECV_BIN_DIR:-}" ]; then
    dir="$SPIKECV_BIN_DIR"
  else
    spk_log "building coordinator and worker (dev profile)"
    (cd "$repo" && cargo build --quiet -p spikecv-coordinator -p spikecv-worker --bins)
    dir="${CARGO_TARGET_DIR:-$repo/target}/debug"
  fi
  dir="$(cd "$dir" && pwd)"
  COORDINATOR="$dir/coordinator"
  WORKER="$dir/worker"
  export SPK_BIN_DIR="$dir"
  if ! [ -x "$COORDINATOR" ] || ! [ -x "$WORKER" ]; then
    spk_die "no coordinator/worker binaries in $dir"
  fi
}

# spk_test_data DIR: a tiny synthetic data set in DIR, its file list cut to
# SPIKECV_TEST_RECORDINGS (6) recordings spread over the four recording sets.
spk_test_data() {
  "$COORDINATOR" data synth --out "$1" --seed 0 --size tiny >/dev/null
  [ -f "$1/filelist.txt" ] || spk_die "data synth wrote no $1/filelist.txt"
  spk_subset_filelist "$1" "${SPIKECV_TEST_RECORDINGS:-6}"
}

# spk_test_experiment FILE DATA_DIR: a tiny experiment (both variants, 1 seed,
# SPIKECV_TEST_FOLDS folds (2), SPIKECV_TEST_EPOCHS epochs (1), T =
# SPIKECV_TEST_STEPS (4)); small enough for 2 CPU cores.
spk_test_experiment() {
  local steps="${SPIKECV_TEST_STEPS:-4}"
  cat >"$1" <<TOML
name = "deploy-test"

[data]
root = "$2"

[protocol]
kind = "train-val-test"
folds = ${SPIKECV_TEST_FOLDS:-2}
seeds = [0]
variants = ["whole", "reduced"]

[simulation]
steps = ${steps}

[training]
batch = 8
epochs = ${SPIKECV_TEST_EPOCHS:-1}
test_steps = ${steps}
TOML
}

# spk_expected_jobs EXPERIMENT: the number of jobs `coordinator plan --json` lists
# (a sweep's plan groups them by configuration).
spk_expected_jobs() {
  "$COORDINATOR" plan --experiment "$1" --json | python3 -c '
import json, sys
plan = json.load(sys.stdin)
print(sum(len(c["jobs"]) for c in plan["configurations"]) if isinstance(plan, dict) else len(plan))'
}

# spk_check_report_csv CSV EXPECTED [pruned-ok]: every job is in the report
# exactly once (one row per configuration/variant/seed/fold/protocol) and
# succeeded (or, with pruned-ok, was pruned by the sweep); EXPECTED rows in all;
# the variants are SPK_VARIANTS (comma-separated; default whole,reduced).
spk_check_report_csv() {
  python3 - "$1" "$2" "${3:-}" <<'PY'
import csv, os, sys
from collections import Counter
path, expected, pruned_ok = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "pruned-ok"
done = {"succeeded", "pruned"} if pruned_ok else {"succeeded"}
rows = list(csv.DictReader(open(path, newline="")))
need = {"experiment", "variant", "seed", "fold", "protocol", "status", "attempts"}
missing = need - set(rows[0].keys() if rows else ())
errors = []
if missing:
    errors.append(f"CSV lacks columns {sorted(missing)}")
else:
    keys = Counter((r["experiment"], r.get("configuration", ""), r["variant"], r["seed"], r["fold"],
                    r["protocol"]) for r in rows)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        errors.append(f"jobs listed more than once: {dup}")
    if len(keys) != expected:
        errors.append(f"{len(keys)} jobs in the report, expected {expected}")
    bad = [(r["variant"], r["seed"], r["fold"], r["status"]) for r in rows if r["status"] not in done]
    if bad:
        errors.append(f"jobs not succeeded: {bad}")
    variants = {r["variant"] for r in rows}
    if variants != set(os.environ.get("SPK_VARIANTS", "whole,reduced").split(",")):
        errors.append(f"variants in the report: {sorted(variants)}")
    attempts = sum(int(r["attempts"] or 0) for r in rows)
    pruned = sum(r["status"] == "pruned" for r in rows)
    print(f"report: {len(rows)} jobs, all ended once ({pruned} pruned); {attempts} attempts in all")
if errors:
    print("report check failed: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
PY
}
