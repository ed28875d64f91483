#!/usr/bin/env bash
# Runs the cpu PTB studies behind the book's §7.2 (Figures 8-12), one after another, two workers of one
# thread each: the validation curves (K = 1 first: minutes; shared masks, Figure 12 and Table 1, then naive
# masks, then L2 instead of dropout, Figure 11), then the training-fit curves (finished in the committed
# journals: a rerun only checks them). Rerun it to continue after any interruption (finished trials are kept, interrupted ones resume from their checkpoints).
# Run it from its own worktree at a fixed commit, so that code edited meanwhile never enters half a study:
#   git worktree add ../micmco-sweeps HEAD && cd ../micmco-sweeps
#   PYTHONPATH=src nohup params/studies/cpu/sweep-ptb.sh > runs/sweep-ptb.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/../../.."
PYTHON="${PYTHON:-.venv/bin/python}"
for study in dreg1-kl-valid vimco1-kl-valid dreg1-kl-valid-l2 vimco1-kl-valid-l2 \
    vimco16-renyi-valid-shared dreg16-renyi-valid-shared vimco16-kl-valid-shared dreg16-kl-valid-shared \
    vimco16-renyi-valid dreg16-renyi-valid vimco16-kl-valid dreg16-kl-valid \
    vimco16-renyi-valid-l2 dreg16-renyi-valid-l2 vimco16-kl-valid-l2 dreg16-kl-valid-l2 \
    dreg1-kl vimco1-kl vimco16-renyi dreg16-renyi vimco16-kl dreg16-kl; do
  echo "== ptb-$study $(date -u +%FT%TZ)"
  OMP_NUM_THREADS=1 "$PYTHON" -m micmco.sweep "params/studies/cpu/ptb-$study.yaml" --workers 2 --threads 2 "$@"
  code=$?
  [ "$code" -eq 130 ] && exit 130
done
