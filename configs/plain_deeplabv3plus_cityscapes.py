# The plain 2D twin of das_deeplabv3plus_cityscapes.py: mmseg's DeepLabV3+
# R-50-D8 Cityscapes 80k config, run through mmdas' tools.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)
# Keeps the base's ImageNet weights (open-mmlab://resnet50_v1c); offline:
#   --cfg-options model.pretrained=None

# mmdas' checked loaders: an image or label that does not decode, or a label
# of another size than its image, raises an error naming the file (mmseg's
# own loaders name no file, and stretch a wrong-size label to fit)
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked'), *_base_.train_pipeline[2:]
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'), _base_.test_pipeline[1],
    dict(type='LoadAnnotationsChecked'), *_base_.test_pipeline[3:]
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
