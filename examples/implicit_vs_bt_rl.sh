#!/bin/bash
# RLOO from π_ref against the implicit DPO reward vs the BT RM trained on the same pairs (run implicit_vs_bt.py first).
# Both rewards are standardized on initial-policy samples (--normalize fixed), the gold reward is tracked.
#   bash examples/implicit_vs_bt_rl.sh runs/implicit-vs-bt "0 1 2" "1e-4 3e-4"
set -euo pipefail
OUT=${1:-runs/implicit-vs-bt}; SEEDS=${2:-0}; LRS=${3:-1e-4 3e-4}
for seed in $SEEDS; do for lr in $LRS; do for r in dpo bt; do
  D=$OUT/seed$seed
  PYTHONPATH=examples rewardlab optimize rloo --policy "$D/ref" --reward "$D/$r" --gold python:implicit_vs_bt:gold \
    --prompts "$D/eval_prompts.jsonl" --steps 60 --k 4 --prompts-per-step 16 --lr "$lr" --normalize fixed \
    --max-new-tokens 16 --eval-every 20 --eval-prompts 32 --eval-samples 4 --seed "$seed" -o "$OUT/rl/$r-s$seed-lr$lr"
done; done; done
