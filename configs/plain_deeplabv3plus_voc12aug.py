# The plain 2D twin of das_deeplabv3plus_voc12aug.py.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py'  # noqa
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
# VOC aug trains on the concatenation of VOC's and SBD's labels
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(d, pipeline=train_pipeline)
        for d in _base_.train_dataloader.dataset.datasets
    ]))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
