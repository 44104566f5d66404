"""Helpers shared by the heads that wrap a stock head and fuse frames."""
from typing import Optional, Sequence


def frames_per_image(batch: int, num_images: int,
                     num_frames: Optional[int], where: str,
                     samples: Optional[Sequence] = None) -> int:
    """T from the feature batch, checked against a configured ``num_frames``
    and against the ``das_num_frames`` that the DAS data preprocessor wrote
    into the samples' metainfo (when there is one).
    """
    if num_images < 1 or batch % num_images:
        raise ValueError(
            f'{where}: {batch} per-frame outputs cannot be split evenly over '
            f'{num_images} images; the backbone must output N*T frames.')
    frames = batch // num_images
    made = {
        (s if isinstance(s, dict) else s.metainfo).get('das_num_frames')
        for s in samples or ()
    } - {None}
    if made and made != {frames}:
        raise ValueError(
            f'{where}: the data preprocessor made {sorted(made)} frames per '
            f'image (das_num_frames) but the features hold {frames} per image '
            f'({batch} outputs for {num_images} images); set the same '
            'num_frames in the backbone and the DAS preprocessor.')
    if num_frames is not None and frames != num_frames:
        raise ValueError(
            f'{where}: got {frames} frames per image ({batch} outputs for '
            f'{num_images} images) but num_frames={num_frames}; set the same '
            'num_frames in the backbone, the head and the DAS transform.')
    return frames


def inner_cfg(head: Optional[dict], wrapped_type: Optional[str],
              kwargs: dict, owner: str) -> dict:
    """Config of the wrapped head from either form (see the wrappers)."""
    if head is not None:
        if wrapped_type is not None or kwargs:
            extra = sorted(kwargs) + (['wrapped_type'] if wrapped_type else [])
            raise ValueError(
                f'{owner}: give the inner head either as head=dict(...) or as '
                'wrapped_type=... plus its arguments, not both (got head and '
                f'{extra}).')
        return dict(head)
    if wrapped_type is None:
        raise ValueError(
            f"{owner}: no inner head; set head=dict(type=...) or "
            "wrapped_type='...' (e.g. wrapped_type='FCNHead').")
    return dict(type=wrapped_type, **kwargs)


def _flatten_head_keys(module, state_dict, prefix, local_metadata) -> None:
    """State-dict post hook: ``<prefix>head.<key>`` -> ``<prefix><key>``."""
    nested = prefix + 'head.'
    for key in [k for k in state_dict if k.startswith(nested)]:
        state_dict[prefix + key[len(nested):]] = state_dict.pop(key)


def _nest_head_keys(module, state_dict, prefix, *args) -> None:
    """Load pre-hook: ``<prefix><key>`` -> ``<prefix>head.<key>``.

    Keys already nested (checkpoints written before the names were flat) are
    kept, unless the inner head has a child called ``head`` of its own.
    """
    inner_has_head = 'head' in module.head._modules
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest.startswith('head.') and not inner_has_head:
            continue
        state_dict[prefix + 'head.' + rest] = state_dict.pop(key)


def share_inner_head_names(wrapper) -> None:
    """Give a wrapper's inner head (``wrapper.head``) the 2D head's names.

    A wrapper keeps the stock head as the submodule ``head``, which would
    nest its parameters one level deeper than in the 2D model
    (``decode_head.head.conv_seg.weight``). With these hooks the wrapper's
    state dict uses the 2D names (``decode_head.conv_seg.weight``), so a
    stock mmseg/mmpretrain checkpoint loads into a DAS model (``load_from``)
    and a DAS checkpoint into the 2D model; checkpoints with the nested names
    still load. The wrapper must own no parameters besides ``head``.
    """
    wrapper.register_state_dict_post_hook(_flatten_head_keys)
    wrapper.register_load_state_dict_pre_hook(_nest_head_keys)
