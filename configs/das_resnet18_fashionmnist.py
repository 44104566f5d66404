# DAS GSF-ResNet-18 on the real Fashion-MNIST; see plain_resnet18_fashionmnist.py.
_base_ = './plain_resnet18_fashionmnist.py'

num_frames = 8
das_policy = dict(
    transforms=[dict(op='translate_x', magnitude=0.03)],
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
        # the plain config's values
        num_classes=10,
        mean=[72.94],
        std=[90.02],
        to_rgb=False),
    backbone=dict(
        type='GSFResNet_CIFAR', num_frames=num_frames, temporal_module='gsf'),
    head=dict(type='TemporalAvgClsHead', wrapped_type='LinearClsHead'))
