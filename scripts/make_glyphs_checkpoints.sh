#!/usr/bin/env bash
# CPU recipe for the GlyphsEval spec v2 checkpoints (teacher -> 4-step TDM student -> TDM-R1), run from the
# repository root; the GPU recipe is `SECTION=glyphs-v2 bash scripts/gpu_run.sh` (one 10-minute call).
# Every stage resumes if interrupted (rerun the same command). LEVEL=hard uses the world glyphs-hard.
# Budgets in minutes (TEACHER_MIN, DISTILL_MIN, R1_MIN) default to a long CPU day on 2 cores; the embedded
# model at 32x128 is about 3x slower per image than at 32x64 (benchmarks/results/glyphs_v2_backbone.json).
# When anything else runs on the machine: export OMP_WAIT_POLICY=PASSIVE and prefix with `nice -n 10`.
set -euo pipefail
W=glyphs; [ "${LEVEL:-standard}" = hard ] && W=glyphs-hard
THREADS=${THREADS:-2}
C=checkpoints/$W

# 1. teacher (multi-step, CFG): batch 64 on CPU instead of the GPU's 256
tdmr1 pretrain --world $W --config configs/glyphs/pretrain.yaml --out runs/$W-teacher \
  --set batch_size=64 --set threads="$THREADS" --set device=cpu --set max_minutes="${TEACHER_MIN:-360}"
mkdir -p "$C" && rm -rf "$C/teacher" && cp -r runs/$W-teacher/model "$C/teacher"
tdmr1 eval --world $W --checkpoint "$C/teacher" --steps 40 --cfg 4.5 --device cpu \
  --out runs/$W-eval-teacher-80 --json "$C/teacher/eval_80nfe.json"
tdmr1 eval --world $W --checkpoint "$C/teacher" --steps 4 --cfg 1.0 --device cpu \
  --out runs/$W-eval-teacher-4 --json "$C/teacher/eval_4steps_cfg1.0.json"

# 2. 4-step TDM student
tdmr1 distill --world $W --teacher "$C/teacher" --config configs/glyphs/distill.yaml --out runs/$W-distill \
  --set batch_size=64 --set threads="$THREADS" --set device=cpu --set max_minutes="${DISTILL_MIN:-120}"
rm -rf "$C/tdm4" && cp -r runs/$W-distill/model "$C/tdm4"
tdmr1 eval --world $W --checkpoint "$C/tdm4" --device cpu --out runs/$W-eval-tdm4 --json "$C/tdm4/eval_4nfe.json"

# 3. TDM-R1 with the OCR reward (the authors' OCR column: configs/glyphs/train.yaml), CPU batch of 4 x 8
tdmr1 train --world $W --init "$C/tdm4" --config configs/glyphs/train.yaml --out runs/$W-r1 \
  --set prompts_per_iteration=4 --set group_size=8 --set minibatch_groups=4 --set lr_generator=2e-5 \
  --set threads="$THREADS" --set device=cpu --set max_minutes="${R1_MIN:-120}"
rm -rf "$C/r1" && cp -r runs/$W-r1/model "$C/r1"
tdmr1 eval --world $W --checkpoint "$C/r1" --device cpu --out runs/$W-eval-r1 --json "$C/r1/eval_4nfe.json"
tdmr1 compare --world $W runs/$W-eval-tdm4/images runs/$W-eval-r1/images
