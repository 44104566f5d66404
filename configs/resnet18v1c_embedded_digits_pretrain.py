# Optional first stage of the demo (`tools/run_demo.py --pretrain`): the demo
# segmentor's 2D backbone (mmseg's ResNetV1c-18, D8, as in
# plain_deeplabv3plus_r18_embedded.py) learns to tell the ten digits apart as
# an mmpretrain classifier on the embedded classification set (one training
# digit per 48-pixel canvas). Its checkpoint is a 2D checkpoint that the DAS
# segmentor's GSF backbone loads through `init_cfg`. Write the data with
#   python tools/make_embedded_dataset.py --task cls --size 48 \
#       --num-train 4000 --num-val 500 --root data/embedded_digits_cls48
_base_ = ['./resnet18_embedded_digits_cls.py']
# mmseg.models registers mmseg's ResNetV1c, named below with its scope
custom_imports = dict(
    imports=['mmdas', 'mmseg.models'], allow_failed_imports=False)

model = dict(
    # the segmentor's backbone exactly (same keys), not mmpretrain's
    # ResNetV1c, whose stem names its layers differently
    backbone=dict(
        _delete_=True,
        type='mmseg.ResNetV1c',
        depth=18,
        # the segmentor's half width (plain_deeplabv3plus_r18_embedded.py)
        stem_channels=32,
        base_channels=32,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        contract_dilation=True,
        out_indices=(3, ),
        norm_cfg=dict(type='BN', requires_grad=True)),
    head=dict(in_channels=256))

data_root = 'data/embedded_digits_cls48'
# the segmentor's normalisation, so that its backbone sees the same inputs
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
# no flips (a mirrored digit is a different symbol), no crops (whole digits)
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=100, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

max_epochs = 3
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=4e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, end=20, by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
         begin=0, end=max_epochs, eta_min=1e-5)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_epochs))
