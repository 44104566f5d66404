# DAS GSF-ResNet-50 on ImageNet with mmpretrain's ResNet-50 recipe (8 GPUs x
# 32 images, SGD 0.1, steps 30/60/90, 100 epochs; 2D result 76.55 top-1).
# Plain 2D twin: plain_resnet50_imagenet.py.
# GPU memory (docs/benchmarks.md, "The paper configs at their real size";
# extrapolated from CPU measurements, not yet measured on a GPU): as shipped,
# 32 images x 8 frames = 256 frames of 224x224 per GPU, about 29 GiB: an 80 GB
# or a 40 GB GPU. 24 GB: --cfg-options model.backbone.with_cp=True (about
# 14 GiB), or 16 images per GPU on 16 GPUs (train_dataloader.batch_size=16,
# the same total batch of 256; about 15 GiB). AMP (--amp) lowers each of these further (not yet measured).
# The base is the plain twin: mmseg's/mmpretrain's config, run offline, with
# mmdas' checked loaders.
_base_ = './plain_resnet50_imagenet.py'

num_frames = 8
das_policy = dict(
    transforms=[dict(op='scale', magnitude=1.05)],
    num_frames=num_frames,
    profile='symmetric')

# The Runner uses model.data_preprocessor and ignores a top-level
# data_preprocessor once the model has one, so the DAS preprocessor lives in
# the model (override: --cfg-options model.data_preprocessor.policy=...).
data_preprocessor = None
model = dict(
    data_preprocessor=dict(
        type='DASClsDataPreprocessor',
        policy=das_policy,
        # mmpretrain's imagenet_bs32.py values
        num_classes=1000,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='GSFResNet', num_frames=num_frames, temporal_module='gsf'),
    head=dict(type='TemporalAvgClsHead', wrapped_type='LinearClsHead'))
