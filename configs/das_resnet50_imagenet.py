# DAS GSF-ResNet-50 on ImageNet with mmpretrain's ResNet-50 recipe (8 GPUs x
# 32 images, SGD 0.1, steps 30/60/90, 100 epochs; 2D result 76.55 top-1).
# Plain 2D twin: plain_resnet50_imagenet.py.
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
