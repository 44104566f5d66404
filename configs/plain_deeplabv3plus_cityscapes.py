# The plain 2D twin of das_deeplabv3plus_cityscapes.py: mmseg's DeepLabV3+
# R-50-D8 Cityscapes 80k config, run through mmdas' tools.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py'  # noqa
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)
# Keeps the base's ImageNet weights (open-mmlab://resnet50_v1c); offline:
#   --cfg-options model.pretrained=None
