# The plain 2D twin of das_resnet50_imagenet.py: mmpretrain's recipe.
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)
