#!/usr/bin/env bash
# Runs the cpu studies added for the book's synthetic figures (issue 8: Figures 2-7, 15, 26, 27),
# one after another, two workers of one thread each: the K = 1 curves first (seconds a trial),
# then the K = 16 and asymmetric ones (a minute), then K = 64 (several minutes). It first waits
# until no other sweep runs (sweep-all.sh), so that at most two trial workers share the machine.
# Rerun it to continue after any interruption: finished trials are kept, interrupted ones resume.
#   nohup params/studies/cpu/sweep-figures.sh > runs/sweep-figures.log 2>&1 &
#   params/studies/cpu/sweep-figures.sh iwae16-kl vqvae     # only these studies
set -uo pipefail
cd "$(dirname "$0")/../../.."
MICMCO="${MICMCO:-.venv/bin/micmco}"
STUDIES=(
  elbo-renyi iwae1-kl iwae1-renyi dreg1-renyi reinforce1-renyi vqvae
  iwae16-kl dreg16-kl1 reinforce16-kl vimco16-kl1 dreg1-kl16 vimco1-kl16
  iwae16-renyi reinforce16-renyi dreg16-power vimco16-power
  dreg16-renyi1 vimco16-renyi1 dreg1-renyi16 vimco1-renyi16
  dreg64-kl dreg64-renyi vimco64-kl vimco64-renyi iwae64-kl iwae64-renyi reinforce64-kl reinforce64-renyi
)
[ "$#" -gt 0 ] && STUDIES=("$@")
# Another sweep: a micmco sweep process, or a script queueing sweeps (sweep-all.sh, or any other
# script named in $OTHER_SWEEPS, an extended regular expression for pgrep -f).
OTHER_SWEEPS="${OTHER_SWEEPS:-sweep-all.sh|/tmp/after[0-9]*.sh|micmco.sweep|micmco sweep}"
idle=0
while [ "$idle" -lt 3 ]; do  # three checks 20 s apart with no other sweep running
  if pgrep -f "$OTHER_SWEEPS" >/dev/null; then idle=0; else idle=$((idle + 1)); fi
  [ "$idle" -lt 3 ] && sleep 20
done
for study in "${STUDIES[@]}"; do
  echo "== $(date +%H:%M:%S) $study"
  OMP_NUM_THREADS=1 "$MICMCO" sweep "params/studies/cpu/$study.yaml" --workers 2 --threads 2
  code=$?
  [ "$code" -eq 130 ] && exit 130
done
echo "== $(date +%H:%M:%S) done"
