"""GSF/TSM video ResNets for mmseg (``GSFResNetV1c``) and mmpretrain
(``GSFResNet``, ``GSFResNet_CIFAR``).

A config changes only ``type`` and adds ``num_frames`` (and optionally
``temporal_module``, ``gsf_ratio``, ``shift_div``, ``gsf_init``); every
argument of the 2D class keeps working (DeepLabV3+ D8 ``dilations``,
``strides``, ``contract_dilation``, ``norm_cfg``, ``with_cp``...).
"""
from mmpretrain.models.backbones import ResNet as ClsResNet
from mmpretrain.models.backbones import ResNet_CIFAR as ClsResNetCIFAR
from mmseg.models.backbones import ResNetV1c as SegResNetV1c

from mmdas.registry import MODELS
from .video_resnet import VideoResNetMixin


@MODELS.register_module()
class GSFResNetV1c(VideoResNetMixin, SegResNetV1c):
    """mmseg's ``ResNetV1c`` (deep stem) with a temporal module per block.

    See :class:`~mmdas.models.backbones.video_resnet.VideoResNetMixin` for
    the video arguments; the others are those of
    ``mmseg.models.backbones.ResNetV1c``.

    Example:
        >>> backbone = GSFResNetV1c(depth=50, num_frames=8,
        ...     dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
        ...     contract_dilation=True)
    """
    das_preprocessor = 'DASSegDataPreProcessor'


@MODELS.register_module()
class GSFResNet(VideoResNetMixin, ClsResNet):
    """mmpretrain's ``ResNet`` with a temporal module per block.

    See :class:`~mmdas.models.backbones.video_resnet.VideoResNetMixin` for
    the video arguments; the others are those of
    ``mmpretrain.models.backbones.ResNet``.
    """
    das_preprocessor = 'DASClsDataPreprocessor'


@MODELS.register_module()
class GSFResNet_CIFAR(VideoResNetMixin, ClsResNetCIFAR):
    """mmpretrain's ``ResNet_CIFAR`` with a temporal module per block.

    See :class:`~mmdas.models.backbones.video_resnet.VideoResNetMixin` for
    the video arguments; the others are those of
    ``mmpretrain.models.backbones.ResNet_CIFAR``.
    """
    das_preprocessor = 'DASClsDataPreprocessor'
