"""Config edits that give every run mmdas's checkpoint and training guards.

``tools/train.py`` and ``tools/test.py`` call :func:`use_checkpoint_hooks`,
so configs that inherit mmseg's or mmpretrain's ``default_runtime.py`` (whose
``default_hooks.checkpoint`` is a plain ``CheckpointHook``) get them too.
"""
from typing import Sequence

#: ``default_hooks.checkpoint`` types that are swapped for the crash-safe one.
PLAIN_CHECKPOINT_HOOKS = ('CheckpointHook', 'mmengine.CheckpointHook')


def use_checkpoint_hooks(cfg,
                         test: bool = False,
                         allow_missing: Sequence[str] = ()) -> None:
    """Set up :class:`~mmdas.engine.SafeCheckpointHook` and
    :class:`~mmdas.engine.CheckpointCoverageHook` in ``cfg`` (in place),
    and for training :class:`~mmdas.engine.FiniteTrainingHook` and
    :class:`~mmdas.engine.RNGStateHook`.

    Args:
        cfg (Config): The run's config.
        test (bool): For ``tools/test.py``: the checkpoint must provide
            every weight of the model (else only a warning). Defaults to
            False.
        allow_missing (Sequence[str]): fnmatch patterns of weights that may
            stay uncovered. Defaults to ().
    """
    hooks = cfg.setdefault('default_hooks', {})
    if 'checkpoint' not in hooks:  # mmengine's default, made crash-safe
        hooks['checkpoint'] = dict(type='SafeCheckpointHook', interval=1)
    elif (hooks['checkpoint'] is not None
          and hooks['checkpoint'].get('type') in PLAIN_CHECKPOINT_HOOKS):
        hooks['checkpoint']['type'] = 'SafeCheckpointHook'
    added = [
        dict(
            type='CheckpointCoverageHook',
            strict=test,
            allow_missing=list(allow_missing))
    ]
    custom = list(cfg.get('custom_hooks', None) or [])
    for guard in ('FiniteTrainingHook', 'RNGStateHook'):
        if not test and guard not in [h.get('type') for h in custom]:
            added.append(dict(type=guard))
    cfg.custom_hooks = custom + added
