#!/usr/bin/env bash
# The GPU evidence run of docs/benchmarks.md, as one script for a short GPU
# lease (one H100 here; about 8 minutes): the video-backbone cost, the search
# cost, a Fashion-MNIST search and the Fashion-MNIST study (3 seeds, equal
# epochs first, then equal compute). Each step has a time limit; the study
# is resumable, so a rerun finishes what a limit cut off.
#
#   OUT=results_dir FMNIST_GZ=dir_with_the_idx_gz_files bash bench/run_gpu_evidence.sh
set -u
OUT=${OUT:-work_dirs/gpu_evidence}
LOG=work_dirs/gpu_evidence_logs  # packed into $OUT/logs.tgz at the end
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$LOG"
export PYTHONPATH=${PYTHONPATH:-}:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/machine.txt"
$PY -c "import torch; print('torch', torch.__version__)" >> "$OUT/machine.txt"
if [ -n "${FMNIST_GZ:-}" ]; then
    $PY tools/prepare_fashion_mnist.py --src "$FMNIST_GZ" --out data/fashion_mnist > /dev/null 2>&1
fi
timeout 50 $PY bench/bench_video_cost.py --device cuda --iters 3 \
    --out "$OUT/video_cost.md" > "$LOG/video_cost.log" 2>&1
timeout 45 $PY bench/bench_search_cost.py --iters 10 --crop 96 --batch 4 \
    --out "$OUT/search_cost.json" > "$LOG/search_cost.log" 2>&1
# the search: the study's network and data (width 16, first 10,000 images)
W=16
timeout 75 $PY tools/train.py configs/das_search_resnet18_fashionmnist.py \
    --work-dir work_dirs/search_fmnist --cfg-options \
    model.backbone.stem_channels=$W model.backbone.base_channels=$W \
    model.head.in_channels=$((8 * W)) train_dataloader.dataset.indices=10000 \
    train_cfg.max_epochs=5 train_cfg.val_interval=5 \
    > "$LOG/search_fmnist.log" 2>&1
STUDY=(bench/study_classification.py --device cuda --jobs 8 --epochs 5
       --width $W --train-subset 10000 --study-dir work_dirs/study_fmnist
       --md "$OUT/study_classification.md" --png "$OUT/study_classification.png")
if [ -f work_dirs/search_fmnist/policy.json ]; then
    STUDY+=(--searched-policy work_dirs/search_fmnist/policy.json)
fi
timeout 160 $PY "${STUDY[@]}" > "$LOG/study_equal_epochs.log" 2>&1
timeout 110 $PY "${STUDY[@]}" --equal-compute > "$LOG/study_equal_compute.log" 2>&1
$PY "${STUDY[@]}" --equal-compute --report-only > "$LOG/study_report.log" 2>&1
tar czf "$OUT/logs.tgz" work_dirs/study_fmnist/results.json \
    work_dirs/search_fmnist/*.json work_dirs/search_fmnist/*.png "$LOG" \
    2>/dev/null
ls -la "$OUT"
