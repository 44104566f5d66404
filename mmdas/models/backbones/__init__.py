from .gsf_resnet import GSFResNet, GSFResNet_CIFAR, GSFResNetV1c
from .video_resnet import VideoResNetMixin

__all__ = ['GSFResNet', 'GSFResNet_CIFAR', 'GSFResNetV1c', 'VideoResNetMixin']
