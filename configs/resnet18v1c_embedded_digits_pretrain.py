# Optional first stage of the demo (`tools/run_demo.py --pretrain`): the demo
# segmentor's 2D backbone (mmseg's ResNetV1c-18, D8, as in
# plain_deeplabv3plus_r18_embedded.py) learns to tell the ten digits apart as
# an mmpretrain classifier on the embedded classification set (one training
# digit per 48-pixel canvas). Its checkpoint is a 2D checkpoint that the DAS
# segmentor's GSF backbone loads through `init_cfg`. Write the data with
#   python tools/make_embedded_dataset.py --task cls --size 48 \
#       --num-train 4000 --num-val 500 --root data/embedded_digits_cls48
_base_ = ['mmpretrain::_base_/default_runtime.py']
# mmseg.models registers mmseg's ResNetV1c, named below with its scope
custom_imports = dict(
    imports=['mmdas', 'mmseg.models'], allow_failed_imports=False)

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='ImageClassifier',
    # the segmentor's backbone exactly (same keys), not mmpretrain's
    # ResNetV1c, whose stem names its layers differently
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        contract_dilation=True,
        out_indices=(3, ),
        norm_cfg=norm_cfg),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

dataset_type = 'CustomDataset'
data_root = 'data/embedded_digits_cls48'
# the segmentor's normalisation, so that its backbone sees the same inputs
data_preprocessor = dict(
    num_classes=10,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # no flips: a mirrored digit is a different symbol
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 3
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, end=20, by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
         begin=0, end=max_epochs, eta_min=1e-5)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs,
                    save_last=True))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
