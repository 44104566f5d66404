#!/usr/bin/env bash
# The Fashion-MNIST study of docs/benchmarks.md at full width (ResNet_CIFAR-18
# with 64 channels) on one GPU, in the CPU study's setting otherwise: the first
# 4,000 training images, 4 epochs, batch 64, T = 4 frames, 3 seeds, the first
# 5,000 test images. Sized for a short GPU lease: on one H100 it took 400 +
# 167 s in two calls (LIMIT seconds each; the second resumed the first).
#
# The searched arm uses the policy that the CPU study's search selected
# (work_dirs/search_fmnist_cpu/policy.json, written by
# bench/run_cpu_classification_study.sh), or POLICY=path. Arms run in order of
# priority: the DAS arms, then each 2D arm and its equal-compute twin (4 x the
# epochs); a time limit (LIMIT seconds) stops the study and the report keeps
# what finished. Resumable: a rerun continues where a stop left it.
#
#   OUT=results_dir [FMNIST_GZ=dir_with_the_idx_gz_files] \
#       bash bench/run_gpu_classification_study.sh
set -u
OUT=${OUT:-work_dirs/gpu_cls_study}
PY=${PYTHON:-python3}
JOBS=${JOBS:-8}
LIMIT=${LIMIT:-420}
POLICY=${POLICY:-work_dirs/search_fmnist_cpu/policy.json}
W=${WIDTH:-64} N=4000 E=4 T=4 B=64
STUDY_DIR=work_dirs/study_fmnist_gpu_w$W
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-}:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
    > "$OUT/machine.txt"
$PY -c "import torch; print('torch', torch.__version__)" >> "$OUT/machine.txt"
if [ -n "${FMNIST_GZ:-}" ]; then
    $PY tools/prepare_fashion_mnist.py --src "$FMNIST_GZ" \
        --out data/fashion_mnist > /dev/null 2>&1 || exit 1
fi
STUDY=(bench/study_classification.py --device cuda --jobs "$JOBS"
       --epochs $E --width $W --train-subset $N --test-subset 5000
       --batch-size $B --num-frames $T --num-workers 2
       --arms das_gsf das_gsf_searched das_tsm das_none
              plain randaugment autoaugment trivialaugment
       --equal-compute --study-dir "$STUDY_DIR"
       --md "$OUT/study_classification_gpu.md"
       --png "$OUT/study_classification_gpu.png")
if [ -f "$POLICY" ]; then
    STUDY+=(--searched-policy "$POLICY")
fi
# SIGINT lets the runner stop its jobs and write what finished
timeout -s INT -k 30 "$LIMIT" $PY "${STUDY[@]}" 2>&1 | tee "$OUT/study.log"
$PY "${STUDY[@]}" --report-only > "$OUT/report.log" 2>&1
tar czf "$OUT/study_runs.tgz" --exclude='*.pth' --exclude='*.png' \
    "$STUDY_DIR" 2>/dev/null
ls -la "$OUT"
