#!/usr/bin/env bash
# The exact commands that produced the shipped ShapesEval checkpoints (run from the repository root).
# Each stage resumes if interrupted (rerun the same command). CPU: export OMP_WAIT_POLICY=PASSIVE
# when anything else runs on the machine (oversubscribed OpenMP threads otherwise spin and crawl).
set -euo pipefail

# 1. teacher (multi-step, CFG); stopped by hand at the step recorded in its model card
tdmr1 pretrain --world shapes --config configs/shapes/pretrain.yaml --out runs/teacher-shapes
mkdir -p checkpoints/shapes && rm -rf checkpoints/shapes/teacher
cp -r runs/teacher-shapes/model checkpoints/shapes/teacher
tdmr1 eval --world shapes --checkpoint checkpoints/shapes/teacher --steps 40 --cfg 4.5 \
  --out runs/eval-teacher-80 --json checkpoints/shapes/teacher/eval_80nfe.json

# 2. 4-step TDM student
tdmr1 distill --world shapes --teacher checkpoints/shapes/teacher --config configs/shapes/distill.yaml \
  --out runs/distill-shapes
rm -rf checkpoints/shapes/tdm4 && cp -r runs/distill-shapes/model checkpoints/shapes/tdm4
tdmr1 eval --world shapes --checkpoint checkpoints/shapes/tdm4 --out runs/eval-tdm4 \
  --json checkpoints/shapes/tdm4/eval_4nfe.json

# 3. TDM-R1
tdmr1 train --world shapes --init checkpoints/shapes/tdm4 --config configs/shapes/train.yaml --out runs/r1-shapes
rm -rf checkpoints/shapes/r1 && cp -r runs/r1-shapes/model checkpoints/shapes/r1
tdmr1 eval --world shapes --checkpoint checkpoints/shapes/r1 --out runs/eval-r1 \
  --json checkpoints/shapes/r1/eval_4nfe.json
