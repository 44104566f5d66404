# The plain 2D twin of das_deeplabv3plus_voc12aug.py.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-40k_voc12aug-512x512.py'  # noqa
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)
# Keeps the base's ImageNet weights (open-mmlab://resnet50_v1c); offline:
#   --cfg-options model.pretrained=None
