#!/usr/bin/env bash
# Runs the cpu studies of issue 6, one after another, two workers of one thread each
# (the K = 1 curves first: they are quick). Rerun it to continue after any interruption:
# finished trials are kept, interrupted ones resume from their checkpoints.
#   nohup params/studies/cpu/sweep-all.sh > runs/sweep-all.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/../../.."
MICMCO="${MICMCO:-.venv/bin/micmco}"
[ -x "$MICMCO" ] || MICMCO="python -m micmco.sweep"
for study in elbo-kl dreg1-kl reinforce1-kl vimco16-renyi dreg16-renyi vimco16-kl dreg16-kl; do
  if [ "$MICMCO" = "python -m micmco.sweep" ] || ! "$MICMCO" sweep --help >/dev/null 2>&1; then
    .venv/bin/python -m micmco.sweep "params/studies/cpu/$study.yaml" --workers 2 --threads 2 "$@"
  else
    "$MICMCO" sweep "params/studies/cpu/$study.yaml" --workers 2 --threads 2 "$@"
  fi
  code=$?
  [ "$code" -eq 130 ] && exit 130
done
