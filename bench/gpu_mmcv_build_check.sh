#!/usr/bin/env bash
# Check the CUDA path of tools/build_mmcv_full.py on a GPU machine: build mmcv
# 2.1.0 with its CUDA ops against that machine's CUDA torch, then run nms and
# roi_align on the GPU and compare them with the CPU ops.
#
#   bench/gpu_mmcv_build_check.sh --prepare DIR
#       here (pip reaches PyPI): put the hash-checked mmcv 2.1.0 sdist and the
#       pure-Python wheels that `import mmcv.ops` needs (mmengine, addict,
#       yapf, termcolor, platformdirs, setuptools<82) into DIR. Uses
#       $PYTHON (default .venv/bin/python), which must have torch.
#   bench/gpu_mmcv_build_check.sh DIR
#       on the GPU machine (no network needed), from the repository root.
#       Needs python3 ($PYTHON) with a CUDA torch, nvcc >= 12 (CUDA_HOME or on
#       PATH), ninja and g++. TORCH_CUDA_ARCH_LIST defaults to the visible
#       GPU's; MAX_JOBS to all cores. Prints the build time and
#       `GPU CHECK PASSED` at the end. Writes only under $WORK (default
#       /tmp/mmcv_gpu_check).
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi

if [[ $1 == --prepare ]]; then
    dir=${2:?--prepare needs a folder}
    py=${PYTHON:-.venv/bin/python}
    mkdir -p "$dir"
    # the script downloads (or reuses) and hash-checks the sdist
    "$py" tools/build_mmcv_full.py --only-sdist --work-dir "$dir"
    "$py" -m pip download -q --no-deps --only-binary=:all: -d "$dir" \
        mmengine==0.10.7 addict yapf termcolor platformdirs "setuptools<82"
    ls -l "$dir"
    exit 0
fi

dir=$(cd "$1" && pwd)
py=${PYTHON:-python3}
work=${WORK:-/tmp/mmcv_gpu_check}
rm -rf "$work"
mkdir -p "$work/site"
"$py" -m pip install -q --no-index --no-deps --no-compile --target "$work/site" \
    "$dir"/*.whl
export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
"$py" -c 'import torch, pkg_resources; assert torch.cuda.is_available(), "no GPU"
print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name())'
nvcc --version | tail -2 || true

start=$(date +%s)
"$py" tools/build_mmcv_full.py --sdist "$dir/mmcv-2.1.0.tar.gz" --cuda 1 \
    --no-install --work-dir "$work/build" | tee "$work/build_stdout.txt"
echo "build took $(( $(date +%s) - start )) s with MAX_JOBS=${MAX_JOBS:-$(nproc)}"
wheel=$(tail -n 1 "$work/build_stdout.txt")
"$py" -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$wheel"

cd "$work"  # import mmcv from the site folder, nothing from the repository
"$py" - <<'EOF'
import torch
from mmcv.ops import nms, roi_align

torch.manual_seed(0)
xy = torch.rand(2000, 2) * 500
boxes = torch.cat([xy, xy + 20 + torch.rand(2000, 2) * 80], dim=1)
scores = torch.rand(2000)
dets_cpu, keep_cpu = nms(boxes, scores, iou_threshold=0.5)
dets_gpu, keep_gpu = nms(boxes.cuda(), scores.cuda(), iou_threshold=0.5)
assert keep_gpu.is_cuda
assert torch.equal(keep_gpu.cpu(), keep_cpu), 'nms: CUDA and CPU disagree'
print(f'nms on CUDA: kept {keep_gpu.numel()} of 2000 boxes, same as CPU')

feats = torch.rand(2, 8, 32, 32)
rois = torch.tensor([[0, 1., 1., 20., 20.], [1, 5., 3., 30., 28.]])
out_cpu = roi_align(feats, rois, (7, 7), 1.0, 2, 'avg', True)
out_gpu = roi_align(feats.cuda(), rois.cuda(), (7, 7), 1.0, 2, 'avg', True)
torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-4, atol=1e-5)
print('roi_align on CUDA: matches CPU')
print('GPU CHECK PASSED')
EOF
