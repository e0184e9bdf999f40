#!/usr/bin/env bash
# Reproduces the shipped default neural model (backend/speech2flame/data/neural_default/):
#   1. a 1-hour synthetic speech corpus (eSpeak NG voices, phonetic-teacher targets), seed 0
#   2. training per configs/default_model.yaml on CPU (GPU used when present: device auto)
#   3. copies the final checkpoint into the package
# About 1 min + 25 min on one CPU thread; set THREADS=2 to use two cores. Run from anywhere:
#   bash scripts/train_default_model.sh            # OUT=out/default_model by default
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=out/default_model               # must match data.root / output in configs/default_model.yaml
THREADS=${THREADS:-1}

export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
"$PY" -m speech2flame.cli synth-corpus "$OUT/corpus" --hours 1 --seed 0 --festival none --workers "$THREADS" --quiet
"$PY" -m speech2flame.cli train configs/default_model.yaml --resume --quiet
rm -rf backend/speech2flame/data/neural_default
mkdir -p backend/speech2flame/data/neural_default
cp "$OUT/run/last/model.safetensors" "$OUT/run/last/config.json" backend/speech2flame/data/neural_default/
cp "$OUT/run/history.json" backend/speech2flame/data/neural_default/training_history.json
echo "default model written to backend/speech2flame/data/neural_default/"
