# DAS GSF-ResNet-18 on the real Fashion-MNIST; see plain_resnet18_fashionmnist.py.
_base_ = './plain_resnet18_fashionmnist.py'

num_frames = 8
das_policy = dict(
    transforms=[dict(op='translate_x', magnitude=0.03)],
    num_frames=num_frames,
    profile='symmetric')

data_preprocessor = dict(type='DASClsDataPreprocessor', policy=das_policy)
model = dict(
    backbone=dict(
        type='GSFResNet_CIFAR', num_frames=num_frames, temporal_module='gsf'),
    head=dict(type='TemporalAvgClsHead', wrapped_type='LinearClsHead'))
