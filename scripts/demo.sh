#!/usr/bin/env bash
# `make demo`: real local Kafka -> simulated week of traffic -> one worker -> leaderboard.
# Each run uses its own topic, consumer group and embedded ClickHouse directory,
# so it can be repeated; the Kafka broker stays up (`tokenlord kafka-local stop`).
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${1:-300}
DAYS=${2:-14}
GAMERS=${3:-5}
TEXT_SHARE=${4:-1.0}  # share of events whose gateway sends text, not counts (tokenized by the core)
FINGERPRINTS=${5:-0}  # 1: those gateways send counts + fingerprints instead of the text
TL=.venv/bin/tokenlord
RUN=$(date +%Y%m%d%H%M%S)
export TOKENLORD_EVENTS_TOPIC="tokenlord.events.demo-$RUN"
export TOKENLORD_DLQ_TOPIC="tokenlord.events.dlq.demo-$RUN"
export TOKENLORD_OUTCOMES_TOPIC="tokenlord.outcomes.demo-$RUN"
export TOKENLORD_GROUP_ID="tokenlord-demo-$RUN"
export TOKENLORD_CLICKHOUSE_URL="chdb://./var/demo/$RUN"
export TOKENLORD_LOG_LEVEL=${TOKENLORD_LOG_LEVEL:-warning}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting a real Apache Kafka (KRaft, 127.0.0.1:${TOKENLORD_KAFKA_PORT:-9092})"
$TL kafka-local start

SIM_ARGS=(--users "$USERS" --days "$DAYS" --gamers "$GAMERS" --seed 7 --text-share "$TEXT_SHARE")
if [ "$FINGERPRINTS" = 1 ]; then
    SIM_ARGS+=(--fingerprints)
    # The organisation's secret, the same on gateways and workers (a demo value).
    export TOKENLORD_FINGERPRINT_KEY=${TOKENLORD_FINGERPRINT_KEY:-demo-organisation-secret}
    KIND="counts + fingerprints, no text"
else
    KIND="prompt and output text, no counts"
fi
step "Simulating $DAYS days of traffic: $USERS users, $GAMERS token-maxxers ($KIND) -> $TOKENLORD_EVENTS_TOPIC (+ outcomes)"
$TL simulate "${SIM_ARGS[@]}"

step "Running a worker until it has consumed everything (Faust + Rust core -> ClickHouse)"
time $TL worker --stop-at-end

# The simulated days end now: with more than 7 of them last week is covered
# (complete and final with 14), and this one has begun.
step "Last week's leaderboard (raw tokens)"
$TL leaderboard --week last --top 10 --by raw

step "The same week, ranked by effective tokens (total - wasted)"
$TL leaderboard --week last --top 10 --by effective

WHO=$($TL leaderboard --week last --format json | .venv/bin/python -c '
import json, sys
rows = json.load(sys.stdin)
print(max(rows, key=lambda r: r["wasted_tokens"])["user"] if rows else "")')
if [ -n "$WHO" ]; then
    step "Why $WHO was discounted (tokenlord explain)"
    $TL explain "$WHO" --week last
fi

step "Last week's teams, ranked by effective tokens (a team = the sum of its members)"
$TL leaderboard --group team --week last --by effective

step "The organisation's last week against the week before"
$TL org --week last --weeks 2

step "This week so far"
$TL leaderboard --week current --top 5

if [ "$FINGERPRINTS" != 1 ]; then
    printf '\nThe same traffic from gateways that send no text (counts + keyed fingerprints, the same verdicts):\n  make demo-run DEMO_FINGERPRINTS=1\n'
fi
printf '\nData: %s  (query it: tokenlord leaderboard --clickhouse-url %s)\n' "$TOKENLORD_CLICKHOUSE_URL" "$TOKENLORD_CLICKHOUSE_URL"
