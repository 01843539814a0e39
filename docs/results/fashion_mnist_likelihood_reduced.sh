#!/usr/bin/env bash
# Reduced-budget Table 2 run (Fashion-MNIST, SensorySync vs JMVAE-kl vs MVAE) on a small CPU box.
# Run from the repository root:  nice -n 10 docs/results/fashion_mnist_likelihood_reduced.sh
# Identical budget for the three models: EPOCHS epochs each, training seed 0 (the configs'), the
# warm-ups U_m, U_c, U_b scaled by EPOCHS / 500 (the paper's ratio of warm-up to training), then
# sensorysync-likelihood on the first test points (evaluation seed 0). Re-running resumes.
set -euo pipefail
EPOCHS=${EPOCHS:-5}
RUN=${RUN:-runs/fmnist_likelihood}
POINTS=${POINTS:-300}
SAMPLES=${SAMPLES:-1000}
LABEL_POINTS=${LABEL_POINTS:-100}
LABEL_SAMPLES=${LABEL_SAMPLES:-5000}
OUT=${OUT:-docs/results/fashion_mnist_likelihood}
BIN=${BIN:-.venv/bin}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per process: faster on shared cores

mkdir -p "$RUN"
for model in sensorysync jmvae mvae; do
  if [ "$model" = sensorysync ]; then src=training/configs/fashion_mnist.yaml
  else src=training/configs/fashion_mnist_$model.yaml; fi
  if [ -f "$RUN/$model/checkpoint.pt" ]; then
    "$BIN/sensorysync-train" --out "$RUN/$model" --resume --epochs "$EPOCHS"
    continue
  fi
  "$BIN/python" - "$src" "$RUN/$model.yaml" "$EPOCHS" <<'PY'
import sys

import yaml

src, dst, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src) as f:
    cfg = yaml.safe_load(f)
scale = epochs / cfg["train"]["epochs"]
for key in ("warmup_modality_epochs", "warmup_core_epochs", "warmup_baseline_epochs"):
    cfg["model"][key] *= scale
cfg["train"]["epochs"] = epochs
with open(dst, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
PY
  echo "== $(date -u +%FT%TZ) training $model ($EPOCHS epochs) from $src"
  "$BIN/sensorysync-train" --config "$RUN/$model.yaml" --out "$RUN/$model"
done
echo "== $(date -u +%FT%TZ) evaluating"
"$BIN/sensorysync-likelihood" "$RUN"/{sensorysync,jmvae,mvae}/checkpoint.pt \
  --names SensorySync JMVAE-kl MVAE \
  --num-points "$POINTS" --num-samples "$SAMPLES" \
  --label-points "$LABEL_POINTS" --label-samples "$LABEL_SAMPLES" --seed 0 --out "$OUT"
echo "== $(date -u +%FT%TZ) done"
