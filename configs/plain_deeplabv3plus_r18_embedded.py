# DeepLabV3+ with a ResNetV1c-18 (D8, half width) trained from scratch on the
# embedded MNIST-digits segmentation set: the 2D twin of the demo job
# (`make demo`), sized for 10 minutes on 2 CPU cores.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    './_base_/datasets/embedded_digits.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

crop_size = (80, 80)
num_classes = 11
# ResNetV1c-18 at half width (32 stem/base channels, 512 -> 256 at the last
# stage): a quarter of the FLOPs, so twice the images per step and more
# steps fit the demo's 10 minutes; 11 classes of digits need no more
width = 32
# BN, not SyncBN: SyncBN needs GPU modules (tools turn it into BN anyway).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
# strokes cover ~4% of the pixels: without down-weighting the background a
# from-scratch model predicts background everywhere for many iterations;
# 0.1 left the first steps faster but drew every digit too fat (half its
# predicted pixels were background at iteration 600)
class_weight = [0.3] + [1.0] * (num_classes - 1)
# conv_seg starts at PyTorch's default scale, not mmseg's normal(std=0.01):
# from scratch on this set, the 0.01 start kept the mIoU below 15 for the
# first 400 iterations (whatever the head, width or LR); this one reached
# 45 by then (README, "Time and result")
conv_seg_init = dict(
    type='Kaiming',
    a=5**0.5,
    mode='fan_in',
    nonlinearity='leaky_relu',
    distribution='uniform',
    override=dict(name='conv_seg'))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # no weights can be downloaded offline
    backbone=dict(
        depth=18, stem_channels=width, base_channels=width,
        norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=8 * width,
        channels=64,
        # an 80 crop gives 10x10 stride-8 features: rates 12-36 would
        # mostly sample padding
        dilations=(1, 3, 6, 9),
        c1_in_channels=width,
        c1_channels=12,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        init_cfg=conv_seg_init,
        loss_decode=dict(
            type='CrossEntropyLoss', loss_weight=1.0,
            class_weight=class_weight)),
    auxiliary_head=dict(
        in_channels=4 * width,
        channels=32,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        init_cfg=conv_seg_init,
        loss_decode=dict(
            type='CrossEntropyLoss', loss_weight=0.4,
            class_weight=class_weight)))

# schedule: 1100 DAS steps take about 9 minutes on an idle 2-core machine
max_iters = 1100
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
