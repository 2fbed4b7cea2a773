#!/usr/bin/env bash
# Runs every fuzz target for a bounded time on the stable toolchain (`-s none`: no sanitizer,
# which needs nightly), after replaying the saved findings in regressions/.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]     (default 120)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Findings land in fuzz/artifacts/TARGET/;
# the exit status is non-zero if any target found one. Results of past runs:
# docs/robustness.md, "Fuzzing".
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-120}
targets=(frame_decoder tracker_handler peer_handler)
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz"; exit 2; }

cargo run --quiet --release --example gen_seeds || exit 2
cargo fuzz build -s none --release || exit 2
bin=target/x86_64-unknown-linux-gnu/release
status=0

for t in "${targets[@]}"; do
  if compgen -G "regressions/$t/*" >/dev/null; then
    if "$bin/$t" regressions/"$t"/* >/dev/null 2>&1; then
      echo "$t: regressions replayed, all pass"
    else
      echo "$t: a saved finding fails again: $bin/$t regressions/$t/*"; status=1
    fi
  fi
done

for t in "${targets[@]}"; do
  log=$(mktemp)
  # -close_fd_mask=3: the peer prints chat lines and warnings; libFuzzer keeps its own output.
  cargo fuzz run -s none --release "$t" -- -max_total_time="$secs" -close_fd_mask=3 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  cov=$(grep -oE 'DONE +cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "$t: ${secs}s, ${runs:-?} runs (${rate:-?}/s), ${cov:-}, no finding"
  else
    echo "$t: FINDING after ${runs:-?} runs (exit $rc); see fuzz/artifacts/$t/ and $log"
    grep -E 'panicked|SUMMARY|Test unit written' "$log" | head -5
    status=1
  fi
done
exit $status
