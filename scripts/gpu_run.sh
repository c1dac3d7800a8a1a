#!/usr/bin/env bash
# One prepared GPU session (H100/H200, ~10 min): the two jobs a 2-core CPU cannot do in a working day,
# run side by side on one GPU with the project's own commands:
#   1. TDM-R1 on ShapesEval at the paper's group size (configs/shapes/train_gpu.yaml), two learning-rate
#      variants; the better one on the full benchmark becomes checkpoints/shapes/r1.
#   2. GlyphsEval end to end: teacher -> 4-step TDM student -> TDM-R1 with the OCR reward.
# Time budgets (minutes) come from the environment so the same script runs a CPU smoke test:
#   SCALE=0.02 DEVICE=cpu OUT=/tmp/out bash scripts/gpu_run.sh
# Results are packed into $OUT (tarballs of the exported models, logs, metrics, grids, eval JSONs).
set -u
SCALE=${SCALE:-1}
DEVICE=${DEVICE:-auto}
RUNS=${RUNS:-runs/gpu}
OUT=${OUT:-/tmp/gpu_out}
LOGS=$RUNS/logs
mkdir -p "$RUNS" "$OUT" "$LOGS"
if [ "${SMOKE:-0}" = 1 ]; then  # tiny batches for a CPU check of the script itself
  PRE=(--set batch_size=8 --set checkpoint_every=2) DIS=(--set batch_size=4 --set checkpoint_every=2)
  RL=(--set prompts_per_iteration=2 --set group_size=2 --set minibatch_groups=2 --set val_prompts_per_tag=1)
else
  PRE=() DIS=() RL=()
fi
m() { python3 -c "print(round($1 * $SCALE, 3))"; }
PY=${PY:-python3}
T() { "$PY" -m tdmr1 "$@"; }
TE() { timeout "${EVAL_TIMEOUT:-40}" "$PY" -m tdmr1 eval "$@"; }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

glyphs_chain() {
  local teacher=${GLYPHS_TEACHER:-$RUNS/glyphs-teacher/model}
  [ -n "${GLYPHS_TEACHER:-}" ] || T pretrain --world glyphs --config configs/glyphs/pretrain.yaml --out "$RUNS/glyphs-teacher" \
    --set max_minutes="$(m 3.3)" --set device="$DEVICE" "${PRE[@]}" &&
  T distill --world glyphs --teacher "$teacher" --config configs/glyphs/distill.yaml \
    --out "$RUNS/glyphs-distill" --set max_minutes="$(m 1.5)" --set device="$DEVICE" "${DIS[@]}" &&
  T train --world glyphs --init "$RUNS/glyphs-distill/model" --config configs/glyphs/train.yaml \
    --out "$RUNS/glyphs-r1" --set max_minutes="$(m 2.6)" --set device="$DEVICE" "${RL[@]}"
}

shapes_run() {  # name, extra overrides...
  local name=$1; shift
  T train --world shapes --config configs/shapes/train_gpu.yaml --out "$RUNS/shapes-$name" \
    --set max_minutes="$(m 5.0)" --set device="$DEVICE" "${RL[@]}" "$@"
}

train_all() {
  glyphs_chain > "$LOGS/glyphs.log" 2>&1 &
  shapes_run a > "$LOGS/shapes-a.log" 2>&1 &
  shapes_run b --set lr_generator=2.0e-4 --set lr_surrogate=6.0e-4 --set lr_fake=6.0e-4 > "$LOGS/shapes-b.log" 2>&1 &
  wait
}

evaluate_all() {
  local e=$RUNS/eval
  for v in a b; do
    [ -f "$RUNS/shapes-$v/model/model.safetensors" ] && TE --world shapes --checkpoint "$RUNS/shapes-$v/model" \
      --out "$e/shapes-$v" --json "$e/shapes-$v.json" --device "$DEVICE"
  done
  [ -z "${GLYPHS_TEACHER:-}" ] && [ -d "$RUNS/glyphs-teacher/model" ] && TE --world glyphs --checkpoint "$RUNS/glyphs-teacher/model" \
    --steps 40 --cfg 4.5 --out "$e/glyphs-teacher-80" --json "$e/glyphs-teacher-80.json" --device "$DEVICE"
  [ -d "$RUNS/glyphs-distill/model" ] && TE --world glyphs --checkpoint "$RUNS/glyphs-distill/model" \
    --out "$e/glyphs-tdm4" --json "$e/glyphs-tdm4.json" --device "$DEVICE"
  [ -d "$RUNS/glyphs-r1/model" ] && TE --world glyphs --checkpoint "$RUNS/glyphs-r1/model" \
    --out "$e/glyphs-r1" --json "$e/glyphs-r1.json" --device "$DEVICE"
  true
}

pack() {  # name, run folder: exported model + the run's light files (no state.pt, no eval images)
  local name=$1 dir=$2
  [ -d "$dir" ] || return 0
  tar -czf "$OUT/$name.tar.gz" --exclude=state.pt --exclude='*.tmp' --exclude=snapshots --exclude=images "$dir"
}

nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
python3 -c "import torch, diffusers, peft, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'diffusers', diffusers.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__)"
START=$(date +%s)
train_all
echo "training done after $(( $(date +%s) - START )) s"
evaluate_all > "$LOGS/eval.log" 2>&1
echo "evaluation done after $(( $(date +%s) - START )) s"
python3 - "$RUNS" <<'PY'
import json, pathlib, sys
e = pathlib.Path(sys.argv[1]) / "eval"
for f in sorted(e.glob("*.json")):
    r = json.loads(f.read_text())
    print(f.stem, "overall", round(r["overall"], 4), "mean_score", round(r.get("mean_score", 0), 4),
          {k: round(v["accuracy"], 3) for k, v in r["tags"].items()})
PY
best=a
if [ -f "$RUNS/eval/shapes-b.json" ] && [ -f "$RUNS/eval/shapes-a.json" ]; then
  best=$(python3 -c "import json,sys; a,b=(json.load(open(f'$RUNS/eval/shapes-{v}.json'))['overall'] for v in 'ab'); print('b' if b>a else 'a')")
fi
echo "best shapes variant: $best"
pack shapes_r1 "$RUNS/shapes-$best"
pack glyphs_teacher "$RUNS/glyphs-teacher"
pack glyphs_tdm4 "$RUNS/glyphs-distill"
pack glyphs_r1 "$RUNS/glyphs-r1"
other=$([ "$best" = a ] && echo b || echo a)
for f in "$LOGS"/*.log; do echo "== $f"; grep -v "━" "$f" | tail -n 6; done
tar -czf "$OUT/extra.tar.gz" --exclude=images "$RUNS/eval" "$LOGS" $(ls -d "$RUNS/shapes-$other"/{metrics.jsonl,samples,reward_curve.png,config.json} 2>/dev/null)
ls -la "$OUT"
