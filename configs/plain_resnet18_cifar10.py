# The plain 2D twin of das_resnet18_cifar10.py: mmpretrain's recipe.
_base_ = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)
