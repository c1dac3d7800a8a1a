#!/usr/bin/env bash
# The session-9 ShapesEval climb (checkpoints/shapes/r1/MODEL_CARD.md, "Session 9"), as it was run: one
# lineage of three segments, each resumed from the previous one's state with changed settings (the copy's
# config.json is edited so the run folder accepts them). 2 CPU cores; about 75 min of training in all.
set -euo pipefail
OUT=${OUT:-runs}
PY=${PY:-python}
train() { tdmr1 train --world shapes --config configs/shapes/train_counting.yaml "$@"; }
fork() {  # fork SRC DST KEY=JSON...: copy a stopped run and change its saved settings
  local src=$1 dst=$2; shift 2
  cp -r "$src" "$dst" && rm -rf "$dst/snapshots"
  "$PY" - "$dst/config.json" "$@" <<'PY'
import json, sys
path, pairs = sys.argv[1], sys.argv[2:]
cfg = json.load(open(path))
for pair in pairs:
    key, value = pair.split("=", 1)
    cfg[key] = json.loads(value)
json.dump(cfg, open(path, "w"), indent=2)
PY
}
# 1. counting prompts only, explicit_step 0.05: warm-up (16,384 labelled rollouts, 5,000 head steps) + 60 iterations
train --set iterations=60 --out "$OUT/counting1"
# 2. the reward direction 5x stronger (explicit_step 0.25), iterations 61-100
fork "$OUT/counting1" "$OUT/counting2" explicit_step=0.25
train --set explicit_step=0.25 --set iterations=100 --out "$OUT/counting2"
# 3. half the groups from the other five tags (counting alone taught "more objects" everywhere), a fresher
#    surrogate (3 extra labelled rollouts an iteration, replay of the last 48 batches, 24 head steps)
MIX='{"counting": 0.5, "single_object": 0.1, "two_object": 0.1, "colors": 0.1, "position": 0.1, "color_attr": 0.1}'
fork "$OUT/counting2" "$OUT/mix1" explicit_step=0.25 surrogate_replay=48 surrogate_warmup=48 \
  surrogate_rollouts=3 surrogate_steps=24 "tag_weights=$MIX"
train --set explicit_step=0.25 --set surrogate_replay=48 --set surrogate_warmup=48 --set surrogate_rollouts=3 \
  --set surrogate_steps=24 --set "tag_weights=$MIX" --set snapshot_every=20 --set iterations="${MIX_ITERATIONS:-240}" \
  --out "$OUT/mix1"
