"""Layout of a DAS video at the model interface.

A DAS video of ``T`` frames travels through mmseg's and mmpretrain's stock
data structures as an ordinary image whose channels are the frames stacked
frame-major: ``[N, T*C, H, W]``, frame ``t`` being channels
``t*C:(t+1)*C``. Keeping dim 0 equal to the number of images lets
``EncoderDecoder`` (padding, slide-inference crops, one data sample per image)
and ``ImageClassifier`` work unchanged. Inside the backbone the frames are
unfolded into the batch, ``[N*T, C, H, W]`` with index ``n*T + t``, which is
the layout of mmaction2's 2D recognisers and of the temporal modules.
"""
from torch import Tensor


def stack_frames(x: Tensor) -> Tensor:
    """Stack the frames of ``[N, T, C, H, W]`` along channels.

    Args:
        x (Tensor): ``[N, T, C, H, W]`` videos.

    Returns:
        Tensor: ``[N, T*C, H, W]``, frame ``t`` in channels ``t*C:(t+1)*C``.
    """
    if x.dim() != 5:
        raise ValueError('stack_frames expects [N, T, C, H, W], got shape '
                         f'{tuple(x.shape)}.')
    n, t, c, h, w = x.shape
    return x.reshape(n, t * c, h, w)


def unstack_frames(x: Tensor, num_frames: int) -> Tensor:
    """Unfold frames stacked along channels into the batch.

    Args:
        x (Tensor): ``[N, T*C, H, W]`` frame-major stacked videos.
        num_frames (int): T.

    Returns:
        Tensor: ``[N*T, C, H, W]``; frame ``t`` of image ``n`` is at
        ``n*T + t``.
    """
    if x.dim() != 4:
        raise ValueError('unstack_frames expects [N, T*C, H, W], got shape '
                         f'{tuple(x.shape)}.')
    n, tc, h, w = x.shape
    if num_frames < 1 or tc % num_frames:
        raise ValueError(
            f'unstack_frames: {tc} channels cannot hold num_frames='
            f'{num_frames} frames (channels must be num_frames * C).')
    return x.reshape(n * num_frames, tc // num_frames, h, w)
