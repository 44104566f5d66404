# DAS GSF-ResNet-18 (CIFAR stem) on CIFAR-10 with mmpretrain's recipe (8 GPUs
# x 16 images, SGD 0.1, steps 100/150, 200 epochs; 2D result 94.82 top-1).
# Plain 2D twin: plain_resnet18_cifar10.py.
# GPU memory (docs/benchmarks.md, "The paper configs at their real size";
# measured on a CPU at this size, not yet on a GPU): 16 images x 8 frames =
# 128 frames of 32x32 per GPU, about 1.0 GiB: any GPU, 24 GB included.
_base_ = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

num_frames = 8
das_policy = dict(
    transforms=[dict(op='rotate', magnitude=5.0)],
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
        # mmpretrain's cifar10_bs16.py values
        num_classes=10,
        mean=[125.307, 122.961, 113.8575],
        std=[51.5865, 50.847, 51.255],
        to_rgb=False),
    backbone=dict(
        type='GSFResNet_CIFAR', num_frames=num_frames, temporal_module='gsf'),
    head=dict(type='TemporalAvgClsHead', wrapped_type='LinearClsHead'))
