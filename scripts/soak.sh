#!/usr/bin/env bash
# Soak: 500 short runs (tiny generated data) through one `acbench suite`
# process, its resident memory, file descriptors and threads logged after
# each run ($ACBENCH_RESOURCE_LOG). Passes when the memory after run 500 is
# within 10% of that after run 50 and no descriptor or thread leaked.
#
#   scripts/soak.sh [RUNS]      (default 500; needs a built acbench)
#
# The same check is `cargo test -p acbench --test soak -- --ignored`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test -p acbench --test soak --locked -- --ignored --nocapture
