# DAS GSF-ResNet-18 (CIFAR stem) classifying the embedded coloured MNIST
# digits: the DAS twin of resnet18_embedded_digits_cls.py, small enough for a
# CPU. Search twin: das_search_resnet18_embedded_digits_cls.py.
_base_ = './resnet18_embedded_digits_cls.py'

# T=4 rather than the paper's 8 keeps a CPU step affordable
num_frames = 4
das_policy = dict(
    transforms=[dict(op='rotate', magnitude=8.0)],
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
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0],
        to_rgb=True),
    backbone=dict(
        type='GSFResNet_CIFAR', num_frames=num_frames, temporal_module='gsf'),
    head=dict(type='TemporalAvgClsHead', wrapped_type='LinearClsHead'))
