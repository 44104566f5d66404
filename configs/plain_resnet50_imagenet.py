# The plain 2D twin of das_resnet50_imagenet.py: mmpretrain's recipe.
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

# mmdas' checked loader: an image that does not decode raises an error naming
# the file (mmcv's own loader names no file)
train_pipeline = [
    dict(type='LoadImageFromFileChecked'), *_base_.train_pipeline[1:]
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'), *_base_.test_pipeline[1:]
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
