#!/usr/bin/env bash
# The CPU Fashion-MNIST study of docs/benchmarks.md in one script, sized for
# this 2-core machine: ResNet_CIFAR-18 width 16, the first 4,000 training
# images, 4 epochs, batch 64, T = 4 frames for the DAS arms, 3 seeds, the
# first 5,000 test images. First the search on the same data and network,
# then every arm at equal epochs, then the plain 2D arm at equal training
# compute (4 x the epochs; EQUAL_COMPUTE_ARMS="plain randaugment ..." adds
# more). Resumable: a rerun continues where a stop left it.
#
#   bash bench/run_cpu_classification_study.sh          # 1 job at a time
#   JOBS=2 bash bench/run_cpu_classification_study.sh   # both cores
set -eu
PY=${PYTHON:-.venv/bin/python}
JOBS=${JOBS:-1}
W=16 N=4000 E=4 T=4 B=64
export PYTHONPATH=${PYTHONPATH:-}:$PWD PYTHONUNBUFFERED=1
SEARCH=work_dirs/search_fmnist_cpu
if [ ! -f $SEARCH/policy.json ]; then
    OMP_NUM_THREADS=$((2 / JOBS > 0 ? 2 / JOBS : 1)) $PY tools/train.py \
        configs/das_search_resnet18_fashionmnist.py --work-dir $SEARCH \
        --cfg-options model.backbone.stem_channels=$W \
        model.backbone.base_channels=$W model.head.in_channels=$((8 * W)) \
        model.backbone.num_frames=$T model.data_preprocessor.cell.num_frames=$T \
        train_dataloader.dataset.indices=$N train_dataloader.batch_size=$B \
        train_dataloader.num_workers=0 train_dataloader.persistent_workers=False \
        val_dataloader.num_workers=0 val_dataloader.persistent_workers=False \
        test_dataloader.num_workers=0 test_dataloader.persistent_workers=False \
        train_cfg.max_epochs=$E train_cfg.val_interval=$E \
        "param_scheduler.milestones=[2,3]"
fi
STUDY=(bench/study_classification.py --device cpu --jobs "$JOBS" --epochs $E
       --width $W --train-subset $N --test-subset 5000 --batch-size $B
       --num-frames $T --num-workers 0
       --searched-policy $SEARCH/policy.json
       --study-dir work_dirs/study_fmnist_cpu
       --md docs/study_classification_cpu.md
       --png docs/study_classification_cpu.png)
$PY "${STUDY[@]}"  # every arm at equal epochs first
$PY "${STUDY[@]}" --equal-compute \
    --equal-compute-arms ${EQUAL_COMPUTE_ARMS:-plain}
