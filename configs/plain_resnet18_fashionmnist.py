# ResNet-18 (CIFAR stem) on the real Fashion-MNIST (60k/10k, 28x28 grey),
# which runs on this project's CPU machines:
#   python tools/prepare_fashion_mnist.py     # Debian's dataset-fashion-mnist
#   python tools/train.py configs/plain_resnet18_fashionmnist.py
# DAS twin: das_resnet18_fashionmnist.py.
_base_ = [
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

data_preprocessor = dict(
    num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        in_channels=1,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(
        type='FashionMNIST',
        data_root='data/fashion_mnist',
        test_mode=False,
        download=False,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    dataset=dict(
        type='FashionMNIST',
        data_root='data/fashion_mnist',
        test_mode=True,
        download=False,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# a short schedule: Fashion-MNIST needs few epochs
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[6, 8], gamma=0.1)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
auto_scale_lr = dict(base_batch_size=128)
