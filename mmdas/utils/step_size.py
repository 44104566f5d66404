"""What one training step of a DAS config asks of a GPU, said at the start.

A DAS model pushes images x T frames through the backbone per GPU step, so
a config that looks like mmseg's (2 images of 512x1024 per GPU) needs about
T times the activation memory; ``tools/train.py`` logs the count and the
crop (:func:`das_step_summary`), and refuses AMP where mmengine cannot run
it (:func:`check_amp_device`) before anything is built.
"""
from typing import Optional

from mmengine.config import Config


def _train_pipelines(cfg: Config):
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') or {}
    datasets = dataset.get('datasets') or [dataset]
    for ds in datasets:
        while isinstance(ds, dict) and 'pipeline' not in ds and 'dataset' \
                in ds:  # wrappers such as RepeatDataset
            ds = ds['dataset']
        if isinstance(ds, dict) and ds.get('pipeline'):
            yield ds['pipeline']


def train_crop(cfg: Config) -> Optional[str]:
    """The training crop of ``cfg``'s pipeline as ``'HxW'`` (None if the
    pipeline has no crop step)."""
    for pipeline in _train_pipelines(cfg):
        for step in pipeline:
            size = step.get('crop_size')
            if size is None and step.get('type') == 'RandomResizedCrop':
                size = step.get('scale')
            if size is None:
                continue
            if isinstance(size, int):
                size = (size, size)
            return f'{size[0]}x{size[1]}'
    return None


def das_step_summary(cfg: Config) -> Optional[str]:
    """One line naming the frames per GPU step (images x T) and the crop of
    a DAS config (its backbone reads ``num_frames`` frames); None otherwise.
    """
    backbone = cfg.get('model', {}).get('backbone') or {}
    frames = backbone.get('num_frames')
    if not isinstance(frames, int):
        return None
    images = (cfg.get('train_dataloader') or {}).get('batch_size')
    crop = train_crop(cfg) or 'the whole image (no crop in the pipeline)'
    optim = (cfg.get('optim_wrapper') or {}).get('type', 'OptimWrapper')
    total = (f'{images} images x {frames} frames = {images * frames} frames'
             if isinstance(images, int) else f'? images x {frames} frames')
    return (f'DAS training: {total} per GPU step (train_dataloader.batch_size'
            f' x model.backbone.num_frames), crop {crop}, '
            f"with_cp={backbone.get('with_cp', False)}, {optim}. "
            'docs/benchmarks.md ("The paper configs at their real size") '
            'gives the memory this needs.')


def check_amp_device(cfg: Config) -> None:
    """Refuse ``AmpOptimWrapper`` (``tools/train.py --amp``) without a GPU.

    mmengine's ``AmpOptimWrapper`` asserts CUDA, NPU, MLU or MUSA when it is
    built (a bare ``AssertionError`` after the model is built); this says so
    when the config is checked.
    """
    optim = cfg.get('optim_wrapper') or {}
    if optim.get('type') != 'AmpOptimWrapper':
        return
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    if (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available()):
        return
    raise ValueError(
        "optim_wrapper.type='AmpOptimWrapper' (what tools/train.py --amp "
        "sets): mmengine's AMP needs a CUDA, NPU, MLU or MUSA device and "
        'this machine has none. On a CPU drop --amp (or set '
        "optim_wrapper.type='OptimWrapper').")
