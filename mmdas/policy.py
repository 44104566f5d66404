"""DAS policies: which transforms turn an image into a video, as plain data.

A policy is a list of transforms composed in order, a frame count and a
frame profile::

    {"transforms": [{"op": "translate_x", "magnitude": 0.05},
                    {"op": "rotate", "magnitude": 3.0}],
     "num_frames": 8,
     "profile": "symmetric"}

It loads from and saves to JSON and is validated when built, so that a typo
fails at config time with the field, the bad value and the valid choices,
not deep inside a training step. The geometry itself lives in
:mod:`mmdas.geometry`.
"""
import json
import numbers
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from torch import Tensor

from . import geometry

__all__ = ['DASPolicy', 'PROFILES', 'build_policy']

#: Frame profiles: how the step offset ``d`` of each frame is laid out.
PROFILES = geometry.PROFILES

_TOP_KEYS = ('transforms', 'num_frames', 'profile')
_TRANSFORM_KEYS = ('op', 'magnitude')


def check_num_frames(num_frames, field: str = 'num_frames') -> int:
    """Return ``num_frames`` if it is an integer >= 1, else raise."""
    if (isinstance(num_frames, bool)
            or not isinstance(num_frames, numbers.Integral)
            or num_frames < 1):
        raise ValueError(f'{field}: {num_frames!r} is invalid; it must be an '
                         f'integer >= 1.')
    return int(num_frames)


def check_profile(profile, field: str = 'profile') -> str:
    """Return ``profile`` if it names a frame profile, else raise."""
    if profile not in PROFILES:
        raise ValueError(f'{field}: unknown frame profile {profile!r}; valid '
                         f'profiles are {list(PROFILES)}.')
    return profile


#: What a policy file holds, for error messages.
POLICY_FILE_EXAMPLE = ('{"transforms": [{"op": "translate_x", "magnitude": '
                       '0.05}], "num_frames": 8, "profile": "symmetric"}')


def read_policy_json(path: str, field: str = 'policy'):
    """The JSON data of a policy (or frozen cell) file.

    Args:
        path (str): The file.
        field (str): The config field that names it, for error messages.

    Raises:
        ValueError: If ``path`` is missing, a directory, unreadable, empty
            or not JSON, naming ``field``, the path and the format.
    """
    def fail(problem):
        return ValueError(
            f'{field}: the policy file {path} {problem}. A policy file is '
            f'JSON like {POLICY_FILE_EXAMPLE} (the DAS search writes '
            'policy.json), or a frozen cell file of a multi-node search.')

    if not osp.exists(path):
        raise fail('does not exist')
    if osp.isdir(path):
        raise fail('is a directory')
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise fail(f'cannot be read ({err})') from None
    if not text.strip():
        raise fail('is empty')
    try:
        return json.loads(text)
    except ValueError as err:
        raise fail(f'is not valid JSON (truncated?): {err}') from None


class DASPolicy:
    """A fixed DAS policy: transforms composed in order over T frames.

    Frame ``t`` applies every transform with its per-step magnitude ``S``
    times the frame's step offset ``d`` (``S ** d`` for ``scale``):

    - ``profile='symmetric'``: frame ``m = T // 2`` is the image exactly,
      frames ``m - d`` and ``m + d`` get ``-d`` and ``+d`` (opposite
      transforms: one continuous motion through the image).
    - ``profile='pingpong'`` (what the authors' code does): frame ``m`` is
      the image, frames ``m - d`` and ``m + d`` both get ``+d`` (the same
      transform: a video that goes out and back).
    - ``profile='forward'``: frame ``t`` gets ``d = t``; frame 0 is the image.

    Ops and magnitude ranges are those of :data:`mmdas.geometry.OPS`:
    ``identity`` (no magnitude); ``translate_x`` / ``translate_y`` (fraction
    of the width / height per step, [-0.5, 0.5]); ``scale`` (zoom factor per
    step, [0.5, 2]);
    ``rotate`` (degrees per step about the centre, [-90, 90]); ``shear_x`` /
    ``shear_y`` ([-1, 1] per step).

    Args:
        transforms (Sequence[dict]): ``dict(op=NAME, magnitude=S)`` in the
            order they are applied. ``magnitude`` may be left out for
            ``identity``. An empty list gives T copies of the image.
        num_frames (int): T. Defaults to 8.
        profile (str): ``'symmetric'``, ``'pingpong'`` or ``'forward'``.
            Defaults to ``'symmetric'``.
        field (str): Name of this policy in error messages (e.g.
            ``'train_pipeline[4].policy'``). Defaults to ``'policy'``.
    """

    def __init__(self,
                 transforms: Sequence[dict],
                 num_frames: int = 8,
                 profile: str = 'symmetric',
                 field: str = 'policy'):
        self.transforms = self._check_transforms(transforms, field)
        self.num_frames = check_num_frames(num_frames,
                                           f'{field}.num_frames')
        self.profile = check_profile(profile, f'{field}.profile')

    @staticmethod
    def _check_transforms(transforms, field: str) -> List[dict]:
        if isinstance(transforms, (str, dict)) or not isinstance(
                transforms, Sequence):
            raise ValueError(
                f'{field}.transforms: {transforms!r} is invalid; it must be a '
                f'list of dict(op=NAME, magnitude=S).')
        checked = []
        for i, item in enumerate(transforms):
            where = f'{field}.transforms[{i}]'
            if not isinstance(item, dict):
                raise ValueError(f'{where}: {item!r} is invalid; it must be '
                                 f'dict(op=NAME, magnitude=S).')
            extra = sorted(set(item) - set(_TRANSFORM_KEYS))
            if extra:
                raise ValueError(f'{where}: unknown keys {extra}; valid keys '
                                 f'are {list(_TRANSFORM_KEYS)}.')
            if 'op' not in item:
                raise ValueError(f'{where}.op: missing; valid ops are '
                                 f'{sorted(geometry.OPS)}.')
            op = item['op']
            if op != 'identity' and 'magnitude' not in item:
                raise ValueError(f'{where}.magnitude: missing for op {op!r}.')
            magnitude = item.get('magnitude', 0.0)
            geometry.check_op(op, magnitude, f'{where}.op',
                              f'{where}.magnitude')
            checked.append(dict(op=op, magnitude=magnitude))
        return checked

    # ---- plain data -------------------------------------------------------
    @classmethod
    def from_dict(cls, cfg: dict, field: str = 'policy') -> 'DASPolicy':
        """Build from ``dict(transforms=..., num_frames=..., profile=...)``.

        Unknown keys are an error (a misspelt ``num_frame`` must not silently
        fall back to the default).
        """
        if not isinstance(cfg, dict):
            raise ValueError(f'{field}: {cfg!r} is invalid; it must be a dict '
                             f'with keys {list(_TOP_KEYS)}.')
        extra = sorted(set(cfg) - set(_TOP_KEYS) - {'type'})
        if extra:
            raise ValueError(f'{field}: unknown keys {extra}; valid keys are '
                             f'{list(_TOP_KEYS)}.')
        if 'transforms' not in cfg:
            raise ValueError(f'{field}.transforms: missing; give a list of '
                             f'dict(op=NAME, magnitude=S).')
        return cls(
            cfg['transforms'],
            num_frames=cfg.get('num_frames', 8),
            profile=cfg.get('profile', 'symmetric'),
            field=field)

    def to_dict(self) -> dict:
        """The policy as plain data (JSON-serialisable)."""
        return dict(
            transforms=[dict(t) for t in self.transforms],
            num_frames=self.num_frames,
            profile=self.profile)

    @classmethod
    def from_json(cls, text: str, field: str = 'policy') -> 'DASPolicy':
        """Build from a JSON string."""
        return cls.from_dict(json.loads(text), field=field)

    def to_json(self, indent: Optional[int] = 2) -> str:
        """The policy as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def load(cls, path: str, field: Optional[str] = None) -> 'DASPolicy':
        """Read a policy from a JSON file.

        Raises:
            ValueError: Naming ``field``, the path and what a policy file
                holds, if the file is missing, not a file, empty or not
                JSON (a truncated write).
        """
        field = field or f'policy ({path})'
        return cls.from_dict(read_policy_json(path, field), field=field)

    def dump(self, path: str) -> None:
        """Write the policy to a JSON file (a temporary file renamed into
        place: a reader never sees half of it)."""
        from mmdas.engine.safe_checkpoint_hook import write_text_atomic
        write_text_atomic(path, self.to_json() + '\n')

    # ---- geometry ---------------------------------------------------------
    @property
    def reference_frame(self) -> int:
        """Index of the frame that is the unchanged image."""
        return geometry.reference_frame(self.num_frames, self.profile)

    def offsets(self, device=None) -> Tensor:
        """``[T]`` step offsets of the frames."""
        return geometry.frame_offsets(self.num_frames, self.profile, device)

    def matrices(self, height: int, width: int, device=None) -> Tensor:
        """``[T, 3, 3]`` float32 forward maps (normalised coordinates).

        ``height`` and ``width`` matter only for ops that are not uniform in
        both axes (``rotate``, shears on non-square images).
        """
        pairs = [(t['op'], t['magnitude']) for t in self.transforms]
        mats = geometry.policy_matrices(pairs, self.offsets(device), height,
                                        width)
        return mats.float()

    def __eq__(self, other) -> bool:
        return isinstance(other, DASPolicy) and self.to_dict() == \
            other.to_dict()

    def __repr__(self) -> str:
        ops = ', '.join(f"{t['op']}={t['magnitude']}" for t in self.transforms)
        return (f'DASPolicy([{ops}], num_frames={self.num_frames}, '
                f"profile='{self.profile}')")


def build_policy(policy: Union[DASPolicy, Dict, str],
                 field: str = 'policy') -> DASPolicy:
    """A :class:`DASPolicy` from a policy, a config dict or a JSON file path.

    Args:
        policy (DASPolicy | dict | str): The policy, its dict form or the
            path of a JSON file holding it.
        field (str): Name of the config field, for error messages.
    """
    if isinstance(policy, DASPolicy):
        return policy
    if isinstance(policy, str):
        return DASPolicy.load(policy, field=f'{field} ({policy})')
    if isinstance(policy, dict):
        return DASPolicy.from_dict(dict(policy), field=field)
    raise ValueError(f'{field}: {policy!r} is invalid; give a DASPolicy, a '
                     f'dict(transforms=[...], num_frames=T, profile=...) or '
                     f'the path of a policy JSON file.')
