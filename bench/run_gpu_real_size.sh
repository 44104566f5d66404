#!/usr/bin/env bash
# The paper configs at their real size on one GPU (issue 18), as one script
# for a short lease (at most 6.5 of its 8 minutes: every step
# has a time limit, a step cut off or out of memory is reported, not fatal):
#
# 1. bench/bench_real_size.py --real: a few training steps of the Cityscapes
#    and VOC DAS configs and their 2D twins at their shipped crops and images
#    per GPU (512x1024 x 2, 512x512 x 4), on synthetic images in the real
#    folder layouts (tests/fixtures.py), printing step time and peak CUDA
#    memory, with and without with_cp and AMP (the 2D twins: AMP); the
#    ImageNet and CIFAR DAS classifiers as shipped;
# 2. bench/bench_video_cost.py: 2D/TSM/GSF/3D ResNet-50 steps at 8 x 224^2,
#    T = 8.
#
#   OUT=results_dir bash bench/run_gpu_real_size.sh
# then copy the tables of $OUT/*.md into docs/benchmarks.md ("The paper
# configs at their real size" and "Video backbone cost").
set -u
OUT=${OUT:-work_dirs/gpu_real_size}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-}:$PWD PYTHONUNBUFFERED=1
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/machine.txt"
$PY -c "import torch; print('torch', torch.__version__)" >> "$OUT/machine.txt"
REAL=($PY bench/bench_real_size.py --device cuda --real --steps 3)
# DAS: with_cp x AMP; the 2D twins: AMP only (with_cp is not what they lack)
timeout 210 "${REAL[@]}" --configs das_deeplabv3plus_cityscapes \
    das_deeplabv3plus_voc12aug --with-cp both --amp both \
    --out "$OUT/real_size_das_seg.md" > "$OUT/real_size_das_seg.log" 2>&1
timeout 70 "${REAL[@]}" --configs plain_deeplabv3plus_cityscapes \
    plain_deeplabv3plus_voc12aug --amp both \
    --out "$OUT/real_size_plain_seg.md" > "$OUT/real_size_plain_seg.log" 2>&1
timeout 60 "${REAL[@]}" --configs das_resnet50_imagenet das_resnet18_cifar10 \
    --out "$OUT/real_size_das_cls.md" \
    > "$OUT/real_size_das_cls.log" 2>&1
timeout 50 $PY bench/bench_video_cost.py --device cuda --iters 5 --frames 8 \
    --out "$OUT/video_cost.md" > "$OUT/video_cost.log" 2>&1
grep -h -e FAILED "$OUT"/*.log
cat "$OUT"/*.md
