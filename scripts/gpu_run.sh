#!/usr/bin/env bash
# One prepared GPU session (H100/H200, ~10 min): the two jobs a 2-core CPU cannot do in a working day,
# run side by side on one GPU with the project's own commands:
#   1. TDM-R1 on ShapesEval at the paper's group size (configs/shapes/train_gpu.yaml), two learning-rate
#      variants; the better one on the full benchmark becomes checkpoints/shapes/r1.
#   2. GlyphsEval end to end: teacher -> 4-step TDM student -> TDM-R1 with the OCR reward.
# Time budgets (minutes) come from the environment so the same script runs a CPU smoke test:
#   SCALE=0.02 DEVICE=cpu OUT=/tmp/out bash scripts/gpu_run.sh
# Results are packed into $OUT (tarballs of the exported models, logs, metrics, grids, eval JSONs).
#
# SECTION=shapes-levers runs the ShapesEval surrogate levers side by side (authors' settings, replay +
# clean-state share + tau band, the explicit reward head), sized for one 10-minute call, then every
# snapshot's benchmark as a learning curve:  SECTION=shapes-levers OUT=$OUT bash scripts/gpu_run.sh
#
# SECTION=glyphs-v2 runs only GlyphsEval spec v2 (32x128, 4-8 letters; LEVEL=hard: glyphs-hard) on the
# whole GPU, sized for one 10-minute call (about 9 min): teacher (3.3 min) -> 4-step TDM student (1.4 min)
# -> TDM-R1 with the OCR reward (1.4 min), then the benchmark (200 words x 4 images, four evaluations side
# by side) for the teacher at 80 and 4 NFE, the student and TDM-R1 at 4 NFE (per-length OCR accuracy and
# exact match in the log and JSONs), packed into $OUT:
#   SECTION=glyphs-v2 OUT=$OUT bash scripts/gpu_run.sh        # e.g. run(command=..., timeout_s=600)
#   SECTION=glyphs-v2 SMOKE=1 SCALE=0.02 DEVICE=cpu OUT=/tmp/out bash scripts/gpu_run.sh   # CPU check
#
# SECTION=scale-bench times one TDM-R1 iteration on an SD3.5-Medium-size transformer (random weights, bf16
# autocast, the authors' LoRA roles) at per-device batch 1 / 12 / 24 with and without gradient checkpointing:
# seconds, peak memory, images/s, MFU (benchmarks/bench_scale_iteration.py), JSON to
# $OUT/scale_iteration_sd35m.json (tiny: _tiny.json; rewritten after every setting; settings left after B_MAX s are skipped):
#   SECTION=scale-bench OUT=$OUT bash scripts/gpu_run.sh                        # one 10-minute call
#   SECTION=scale-bench SMOKE=1 DEVICE=cpu OUT=/tmp/out bash scripts/gpu_run.sh  # CPU check (tiny model)
#
# SECTION=learnability measures how many labelled images a learned reward needs to rank ShapesEval's
# reward (benchmarks/reward_learnability.py: 105k student rollouts, a clean-image CNN reward model at 4k to
# 102k training images, both losses, plus the brightness control), JSON to $OUT (about 6 min):
#   SECTION=learnability OUT=$OUT bash scripts/gpu_run.sh
#   SECTION=learnability LB=4 LH=2 LSTEPS=8 DEVICE=cpu OUT=/tmp/out bash scripts/gpu_run.sh   # CPU check
set -u
SECTION=${SECTION:-all}
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

glyphs_v2() {  # GlyphsEval spec v2 on the whole GPU (SECTION=glyphs-v2); budgets in minutes, scaled by SCALE
  local w=glyphs; [ "${LEVEL:-standard}" = hard ] && w=glyphs-hard
  local r=$RUNS/$w-v2 e=$RUNS/$w-v2/eval
  mkdir -p "$e"
  T pretrain --world $w --config configs/glyphs/pretrain.yaml --out "$r/teacher" \
    --set max_minutes="$(m "${G_PRE:-3.3}")" --set device="$DEVICE" "${PRE[@]}" > "$LOGS/$w-teacher.log" 2>&1 &&
  T distill --world $w --teacher "$r/teacher/model" --config configs/glyphs/distill.yaml --out "$r/tdm4" \
    --set max_minutes="$(m "${G_DIS:-1.4}")" --set device="$DEVICE" "${DIS[@]}" > "$LOGS/$w-tdm4.log" 2>&1 &&
  T train --world $w --init "$r/tdm4/model" --config configs/glyphs/train.yaml --out "$r/r1" \
    --set max_minutes="$(m "${G_RL:-1.4}")" --set device="$DEVICE" "${RL[@]}" > "$LOGS/$w-r1.log" 2>&1
  local rc=$?
  echo "glyphs-v2 training done after $(( $(date +%s) - START )) s (rc $rc)"
  local lim=(); [ "${SMOKE:-0}" = 1 ] && lim=(--limit-prompts 1 --images-per-prompt 1)
  export EVAL_TIMEOUT=${EVAL_TIMEOUT:-90}
  local t=$r/teacher/model
  [ -d "$r/tdm4/model" ] && TE --world $w --checkpoint "$r/tdm4/model" --out "$e/tdm4" --json "$e/tdm4_4nfe.json" \
    --device "$DEVICE" "${lim[@]}" > "$LOGS/$w-eval-tdm4.log" 2>&1 &
  [ -d "$r/r1/model" ] && TE --world $w --checkpoint "$r/r1/model" --out "$e/r1" --json "$e/r1_4nfe.json" \
    --device "$DEVICE" "${lim[@]}" > "$LOGS/$w-eval-r1.log" 2>&1 &
  [ -d "$t" ] && TE --world $w --checkpoint "$t" --steps 40 --cfg 4.5 --out "$e/teacher80" \
    --json "$e/teacher_80nfe.json" --device "$DEVICE" "${lim[@]}" > "$LOGS/$w-eval-teacher80.log" 2>&1 &
  [ -d "$t" ] && TE --world $w --checkpoint "$t" --steps 4 --cfg 1.0 --out "$e/teacher4" \
    --json "$e/teacher_4steps_cfg1.0.json" --device "$DEVICE" "${lim[@]}" > "$LOGS/$w-eval-teacher4.log" 2>&1 &
  wait
  echo "glyphs-v2 evaluation done after $(( $(date +%s) - START )) s"
  "$PY" - "$e" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(f.read_text())
    per = {t: (round(v["mean_score"], 3), round(v["accuracy"], 3)) for t, v in r["tags"].items()}
    print(f.stem, "OCR", round(r["ocr_accuracy"], 4), "exact", round(r["exact_match"], 4),
          "grey", round(r["gray_fraction"], 4), "per length (OCR, exact):", per)
PY
  pack "$w-v2_teacher" "$r/teacher"; pack "$w-v2_tdm4" "$r/tdm4"; pack "$w-v2_r1" "$r/r1"
  tar -czf "$OUT/$w-v2_extra.tar.gz" --exclude=images "$e" "$LOGS"
  for f in "$LOGS"/$w-*.log; do echo "== $f"; grep -v "━" "$f" | tail -n 4; done
  ls -la "$OUT"
}

shapes_levers() {  # SECTION=shapes-levers: the surrogate levers of issue 13 side by side, one 10-minute call
  # Three runs share the GPU for ~6 min each (G = 24, m = 16: 384 images an iteration), sur_rank every 5
  # iterations (per tau band), a snapshot every 25 iterations; then every snapshot's full benchmark and the
  # learning-curve PNG/JSON (benchmarks/learning_curve.py). Read sur_rank first: no ranking, no climb.
  local base=(--set snapshot_every=25 --set sur_rank_every=5 --set val_every=0 --set max_minutes="$(m "${L_MIN:-6.0}")")
  shapes_run authors "${base[@]}" > "$LOGS/shapes-authors.log" 2>&1 &
  shapes_run replay "${base[@]}" --set surrogate_steps=4 --set surrogate_replay=8 --set surrogate_clean_share=0.5 \
    --set t_max_surrogate=0.9 > "$LOGS/shapes-replay.log" 2>&1 &
  shapes_run explicit "${base[@]}" --set surrogate=explicit --set t_min_surrogate=0.25 --set t_max_surrogate=0.8 \
    --set surrogate_steps=4 --set surrogate_replay=8 > "$LOGS/shapes-explicit.log" 2>&1 &
  wait
  echo "shapes-levers training done after $(( $(date +%s) - START )) s"
  for v in authors replay explicit; do
    timeout "${CURVE_TIMEOUT:-150}" "$PY" benchmarks/learning_curve.py --run "$RUNS/shapes-$v" \
      --out "$RUNS/curves/shapes-$v" > "$LOGS/curve-$v.log" 2>&1 &
  done
  wait
  for v in authors replay explicit; do
    echo "== $v"; grep -h '"sur_rank"' "$RUNS/shapes-$v/metrics.jsonl" | "$PY" -c \
      "import json,sys; r=[json.loads(l)['sur_rank'] for l in sys.stdin]; print('sur_rank last 10:', [round(x,3) for x in r[-10:]])"
    tail -n 3 "$LOGS/curve-$v.log"
    pack "shapes-$v" "$RUNS/shapes-$v"
  done
  tar -czf "$OUT/shapes-levers_curves.tar.gz" --exclude=images "$RUNS/curves" "$LOGS"
  ls -la "$OUT"
}

learnability() {  # SECTION=learnability: the data a learned ShapesEval reward needs (issue 13)
  local common=(--batches "${LB:-1600}" --heldout "${LH:-40}" --steps "${LSTEPS:-6000}" --device "$DEVICE" --seed 11
    --out "$OUT/reward_learnability_shapes.json")
  "$PY" benchmarks/reward_learnability.py "${common[@]}" --sizes 4096 16384 65536 102400 --loss mse bt \
    --seeds 0 1 2 > "$LOGS/learnability.log" 2>&1
  "$PY" benchmarks/reward_learnability.py "${common[@]}" --sizes 16384 65536 --loss mse --seeds 0 1 2 \
    --tau 0.05 0.6 >> "$LOGS/learnability.log" 2>&1  # what the surrogate sees: noisy states
  "$PY" benchmarks/reward_learnability.py "${common[@]}" --sizes 4096 --loss mse --control brightness \
    >> "$LOGS/learnability.log" 2>&1
  "$PY" - "$OUT/reward_learnability_shapes.json" <<'PY'
import json, sys
for k, v in json.load(open(sys.argv[1])).items():
    print(k, "images", v["images"], "steps", v["steps"], "best held-out", v["best_heldout"], "final", v["final_heldout"])
PY
  cp "$LOGS/learnability.log" "$OUT/"
}

scale_bench() {  # SECTION=scale-bench: real-size iteration cost on the GPU (tiny on CPU with SMOKE=1)
  local dev=$DEVICE extra=() json=$OUT/scale_iteration_sd35m.json
  [ "$dev" = auto ] && dev=cuda
  if [ "${SMOKE:-0}" = 1 ]; then
    extra=(--tiny --batches 1,2 --checkpointing off,on --warmup 0 --repeats 1 --threads 1)
    json=$OUT/scale_iteration_tiny.json
  fi
  timeout "${B_TIMEOUT:-570}" "$PY" benchmarks/bench_scale_iteration.py --device "$dev" --max-seconds "${B_MAX:-420}" \
    --out "$json" "${extra[@]}" 2>&1 | tee "$LOGS/scale-bench.log" | grep -v "^{" || true
  "$PY" - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(r["device"], "peak", r["peak_bf16_flops"], "model FLOPs/image", r.get("model_flops_per_image"))
for x in r["runs"]:
    keep = ("per_device_batch", "gradient_checkpointing", "status", "seconds_per_iteration", "images_per_second",
            "peak_memory_gib", "achieved_model_tflops", "mfu", "hfu", "error")
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in x.items() if k in keep})
PY
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
if [ "$SECTION" = shapes-levers ]; then
  shapes_levers
  exit 0
fi
if [ "$SECTION" = learnability ]; then
  learnability
  exit 0
fi
if [ "$SECTION" = scale-bench ]; then
  scale_bench
  exit 0
fi
if [ "$SECTION" = glyphs-v2 ]; then
  glyphs_v2
  exit 0
fi
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
