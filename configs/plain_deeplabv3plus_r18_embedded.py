# DeepLabV3+ with a ResNetV1c-18 (D8) trained from scratch on the embedded
# MNIST-digits segmentation set: the demo job (`make demo`), sized for a few
# minutes on 2 CPU cores.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    './_base_/datasets/embedded_digits.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

crop_size = (96, 96)
num_classes = 11
# BN, not SyncBN: SyncBN needs GPU modules (tools turn it into BN anyway).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
# strokes cover ~5% of the pixels: without down-weighting the background a
# from-scratch model predicts background everywhere for many iterations
class_weight = [0.1] + [1.0] * (num_classes - 1)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # no weights can be downloaded offline
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=512,
        channels=128,
        # a 128 crop gives 16x16 stride-8 features: rates 12-36 would
        # mostly sample padding
        dilations=(1, 3, 6, 9),
        c1_in_channels=64,
        c1_channels=12,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        loss_decode=dict(
            type='CrossEntropyLoss', loss_weight=1.0,
            class_weight=class_weight)),
    auxiliary_head=dict(
        in_channels=256,
        channels=64,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        loss_decode=dict(
            type='CrossEntropyLoss', loss_weight=0.4,
            class_weight=class_weight)))

# schedule
max_iters = 700
# AdamW leaves the all-background start sooner than SGD from scratch
optimizer = dict(type='AdamW', lr=2e-3, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=20, by_epoch=False),
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=20,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='SafeCheckpointHook',
        by_epoch=False,
        interval=100,
        max_keep_ckpts=2,
        save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
