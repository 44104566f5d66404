"""DAS frames at test time only: a 2D mmseg segmentor, unchanged weights.

:func:`das_test_time_model` rewrites the model config of a trained 2D
``EncoderDecoder`` so that each test image becomes a T-frame DAS video that
the same 2D network reads frame by frame (no temporal module), and the
per-frame logits are inverse-warped back to the image and averaged. This is
a geometric test-time augmentation (mmseg's TTA offers flips and scales).
``tools/test.py --das-test-policy`` applies it.

The rewrite is config-only: the segmentor becomes ``DASEncoderDecoder``
(slide inference passes each crop's box to the fusion head), the backbone
its video twin with ``temporal_module=None`` (same parameters, same names),
the data preprocessor its DAS twin (no parameters), and the decode head is
wrapped in a ``TemporalFusionHead``, which keeps the inner head's parameter
names. The auxiliary head is left alone: it is not run at test time.
"""
import copy
import os.path as osp
from typing import Optional

from mmdas.policy import DASPolicy

# 2D backbone type -> its video twin (same constructor arguments and weights)
VIDEO_BACKBONES = {'ResNetV1c': 'GSFResNetV1c'}
SEG_PREPROCESSORS = ('SegDataPreProcessor', 'mmseg.SegDataPreProcessor')
# DASEncoderDecoder tells the fusion head where slide-inference crops lie
SEGMENTORS = ('EncoderDecoder', 'mmseg.EncoderDecoder', 'DASEncoderDecoder')


def parse_das_test_policy(spec: str,
                          num_frames: Optional[int] = None) -> DASPolicy:
    """A policy from a policy JSON file or ``'OP:MAGNITUDE'``.

    Args:
        spec (str): Path of a policy JSON file (``DASPolicy.dump``, or the
            ``policy.json`` a search writes) or ``op:magnitude``, e.g.
            ``rotate:8``.
        num_frames (int, optional): T for the ``op:magnitude`` form
            (default 8). A file brings its own T; a different value here is
            an error.
    """
    field = '--das-test-policy'
    if osp.isfile(spec):
        policy = DASPolicy.load(spec, field=f'{field} ({spec})')
        if num_frames is not None and num_frames != policy.num_frames:
            raise ValueError(
                f'--das-test-frames: {num_frames} differs from the '
                f'{policy.num_frames} frames of {spec}; leave it out.')
        return policy
    op, sep, magnitude = spec.partition(':')
    try:
        magnitude = float(magnitude)
    except ValueError:
        sep = ''
    if not sep:
        raise ValueError(
            f'{field}: {spec!r} is neither a policy JSON file nor '
            "OP:MAGNITUDE (e.g. 'rotate:8' or 'translate_x:0.05').")
    return DASPolicy([dict(op=op, magnitude=magnitude)],
                     num_frames=8 if num_frames is None else num_frames,
                     field=field)


def das_test_time_model(model: dict,
                        policy: DASPolicy,
                        fusion: str = 'inverse_warp') -> dict:
    """Model config of a 2D segmentor turned into a test-time DAS model.

    Args:
        model (dict): ``cfg.model`` of a 2D mmseg ``EncoderDecoder`` with a
            backbone in :data:`VIDEO_BACKBONES` and a ``SegDataPreProcessor``.
        policy (DASPolicy): The frames to make from each test image.
        fusion (str): ``TemporalFusionHead`` fusion. Defaults to
            ``'inverse_warp'``.

    Returns:
        dict: A new model config; ``model`` is not changed.
    """
    where = '--das-test-policy'
    if model.get('type') not in SEGMENTORS:
        raise ValueError(
            f"{where}: model.type is {model.get('type')!r}; test-time DAS "
            f'turns a 2D mmseg segmentor ({list(SEGMENTORS)}) into a DAS '
            'one.')
    backbone = model['backbone'].get('type')
    if backbone not in VIDEO_BACKBONES:
        raise ValueError(
            f'{where}: model.backbone.type {backbone!r} has no video twin '
            f'here; supported 2D backbones: {sorted(VIDEO_BACKBONES)}. '
            '(A model trained with DAS makes its frames already.)')
    preprocessor = model.get('data_preprocessor') or {}
    if preprocessor.get('type') not in SEG_PREPROCESSORS:
        raise ValueError(
            f'{where}: model.data_preprocessor.type is '
            f"{preprocessor.get('type')!r}; expected 'SegDataPreProcessor'.")
    model = copy.deepcopy(model)
    model['type'] = 'DASEncoderDecoder'
    model['backbone'].update(
        type=VIDEO_BACKBONES[backbone],
        num_frames=policy.num_frames,
        temporal_module=None)
    model['data_preprocessor'].update(
        type='DASSegDataPreProcessor', policy=policy.to_dict())
    model['decode_head'] = dict(
        type='TemporalFusionHead',
        head=model['decode_head'],
        fusion=fusion,
        num_frames=policy.num_frames)
    return model
