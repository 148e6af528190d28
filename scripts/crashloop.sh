#!/bin/sh
# The crash loop at full length: a steady stream of runs, the server killed with SIGKILL
# at random moments KILLS times (default 50) and restarted on the same data dir; then
# every accepted execution must be terminal, none run more than twice, no event
# sequence have a gap, and SQLite's integrity check pass.
#
#   scripts/crashloop.sh [KILLS] [MAX_MS_BETWEEN_KILLS]
#
# FLOOM_CRASHLOOP_SEED=N replays a sequence of kill moments (the test prints its seed).
set -eu
cd "$(dirname "$0")/.."
FLOOM_CRASHLOOP_KILLS="${1:-50}" FLOOM_CRASHLOOP_MAX_MS="${2:-3000}" \
    cargo test --release -p floom-host --test crashloop -- --nocapture
