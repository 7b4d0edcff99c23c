#!/usr/bin/env bash
# Pre-train the universal UniST that ships in the package (src/urbanst/pretrained/$NAME), then score it zero-shot.
#
#   1. masked pre-training (reconstruction, every mask strategy) over the training splits of the corpus;
#   2. forecasting over the corpus's training windows (fit --init: prompts and head tune), validated on the
#      corpus's validation windows, never on an evaluation dataset;
#   3. the checkpoint is copied into the package with its card (benchmarks/universal_card.py);
#   4. zero-shot tables on each evaluation dataset: the target's own baselines, fracast, and the checkpoint with
#      test-time adaptation off, causal and transductive.
# One volume per attribute (channels=separate), so one set of weights serves any number of channels.
# Budgets in seconds: PRETRAIN, TUNE; a run folder: OUT; model options beyond these: OPTIONS (default
# "--option window_norm=true", as unist-urban-v2; OPTIONS= gives v1's recipe); the zero-shot tables score one
# test window in STRIDE, with the BASELINES beside the checkpoint (BASELINES= scores the checkpoint alone).
# One thread each (the machine has two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${NAME:-unist-urban-v2}
CORPUS=${CORPUS:-nyc_bike,nyc_taxi_grid,nyc_crime,beijing_air,aqi36}
EVALUATION=${EVALUATION:-nyc_taxi chi_crime montevideo_bus la_loop}
PRETRAIN=${PRETRAIN:-1800}
TUNE=${TUNE:-900}
OUT=${OUT:-runs/universal}
OPTIONS=${OPTIONS---option window_norm=true}
STRIDE=${STRIDE:-97}
BASELINES=${BASELINES-last,seasonal,ridge_periodic,fracast}
URBANST=${URBANST:-.venv/bin/urbanst}
PYTHON=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MODEL="--model unist --option channels=separate --option size=small $OPTIONS --history 12 --horizon 12 --batch-size 32"

mkdir -p "$OUT"
SECONDS=0
$URBANST pretrain --datasets "$CORPUS" $MODEL --time-budget "$PRETRAIN" --max-epochs 100 --patience 10 \
  --output "$OUT/pretrain"
pretrain_seconds=$SECONDS
$URBANST fit --dataset nyc_taxi --shots zero --source "$CORPUS" $MODEL --init "$OUT/pretrain/model" \
  --time-budget "$TUNE" --max-epochs 100 --patience 5 --test-stride 25 --output "$OUT/tune"
echo "{\"pretrain\": $pretrain_seconds, \"tune\": $((SECONDS - pretrain_seconds))}" > "$OUT/wall_seconds.json"
rm -rf "src/urbanst/pretrained/$NAME" && mkdir -p src/urbanst/pretrained
cp -r "$OUT/tune/model" "src/urbanst/pretrained/$NAME"
$PYTHON benchmarks/universal_card.py --name "$NAME" --runs "$OUT" --corpus "$CORPUS" --evaluation $EVALUATION --stride "$STRIDE"

for dataset in $EVALUATION; do
  for mode in off causal transductive; do
    tta=$([ "$mode" = off ] && echo "" || echo "--tta-steps 5 --tta-mode $mode")
    models=$([ "$mode" = off ] && [ -n "$BASELINES" ] && echo "$BASELINES,pretrained:$NAME" || echo "pretrained:$NAME")
    $URBANST benchmark --dataset "$dataset" --models "$models" $tta --test-stride "$STRIDE" \
      --output "$OUT/zero/$dataset-$mode"
  done
done
$PYTHON benchmarks/universal_card.py --name "$NAME" --runs "$OUT" --corpus "$CORPUS" --evaluation $EVALUATION --stride "$STRIDE"
