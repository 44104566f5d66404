"""Export a DAS (or 2D) segmentor or classifier to ONNX, checked in
onnxruntime.

One graph from the raw image batch ``[N, 3, H, W]`` (float 0-255, channels
as the config's pipeline loads them: BGR for mmcv's loaders) to the fused
logits ``[N, K, H, W]`` (segmentation) or the class scores ``[N, K]``
before softmax (classification): normalisation, the DAS frames, the video
backbone, the heads and the fusion, as ``inference`` runs them (see
:mod:`mmdas.deployment`). The images are resized outside the graph, as the
test pipeline's ``Resize`` does.

After exporting, the tool runs the ONNX model in onnxruntime (CPU) on test
images (``--images``, else the first ``--num-images`` of the config's test
set, else random images) and prints the parity with PyTorch (max absolute
difference of the logits, argmax agreement) and the latency per image of
both; with ``--dynamic`` at a second, larger size of another aspect ratio
too. ``--fail-over`` makes it exit with an error beyond the given tolerance.

Usage::

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx
        [--shape H W] [--opset N] [--dynamic] [--images IMG ...]
        [--num-images N] [--cfg-options k=v ...]

Needs ``pip install -e ".[deploy]"`` (onnx, onnxruntime, onnxscript).
"""
import argparse
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import mmdas  # noqa: E402,F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402

from mmdas import deployment  # noqa: E402

# the largest drift the issue allows between ONNX and PyTorch
MAX_ABS_DIFF = 1e-4
MIN_ARGMAX_AGREEMENT = 0.999


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'),
        help="input size (default: the config's crop_size)")
    parser.add_argument(
        '--opset', type=int, default=18, help='ONNX opset (>= 16)')
    parser.add_argument(
        '--dynamic', action='store_true',
        help='dynamic batch, height and width')
    parser.add_argument(
        '--images', nargs='+', help='images to check parity on')
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument(
        '--fail-over', action='store_true',
        help=f'exit with an error if the max difference exceeds '
        f'{MAX_ABS_DIFF} or the argmax agreement is below '
        f'{100 * MIN_ARGMAX_AGREEMENT}%%')
    parser.add_argument(
        '--json', help='also write the figures to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def build_model(cfg: Config, checkpoint: str) -> torch.nn.Module:
    """The config's model on the CPU, in eval mode, with the checkpoint."""
    from mmengine.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu')
    return model.eval()


def default_shape(cfg: Config):
    """The config's ``crop_size`` (or its preprocessor's ``size``)."""
    for shape in (cfg.get('crop_size'),
                  cfg.model.get('data_preprocessor', {}).get('size')):
        if shape:
            return tuple(int(v) for v in shape)
    raise ValueError('--shape H W: the config has no crop_size to default '
                     'to; give the input size.')


def test_image_paths(cfg: Config, count: int):
    """The first ``count`` image files of the config's test set, or []."""
    from mmengine.registry import DATASETS
    try:
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
    except Exception as e:  # no data on this machine: say so, go on
        print(f'(no test set to check on: {type(e).__name__}: '
              f'{str(e)[:120]})')
        return []
    return [dataset.get_data_info(i)['img_path']
            for i in range(min(count, len(dataset)))]


def load_images(paths, shape, count: int, seed: int = 0) -> torch.Tensor:
    """``[N, 3, H, W]`` float 0-255 BGR images resized to ``shape``, or
    random ones when there are no paths."""
    import mmcv
    if not paths:
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (count, 3, *shape),
                             generator=generator).float()
    images = [
        mmcv.imresize(mmcv.imread(p, channel_order='bgr'),
                      (shape[1], shape[0])) for p in paths
    ]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1,
                                                      2).float().contiguous()


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shape = tuple(args.shape) if args.shape else default_shape(cfg)
    model = build_model(cfg, args.checkpoint)
    wrapper = deployment.ImageToPrediction(model).eval()
    paths = args.images or test_image_paths(cfg, args.num_images)
    images = load_images(paths, shape, args.num_images)
    source = (f'{len(paths)} test images' if paths else
              f'{len(images)} random images (no test images found)')
    print(f'exporting {osp.basename(args.config)} ({wrapper.task}, '
          f'{wrapper.num_frames} frame(s)) at {shape[0]}x{shape[1]}'
          f'{" with dynamic batch/height/width" if args.dynamic else ""} '
          f'to {args.out} ...', flush=True)
    deployment.export_onnx(wrapper, images, args.out, opset=args.opset,
                           dynamic=args.dynamic)
    session = deployment.onnxruntime_session(args.out)
    checks = [images]
    if args.dynamic:
        second = deployment.second_shape(shape)
        wrapper.check_maps(*second)
        checks.append(load_images(paths, second, args.num_images, seed=1))
    report = dict(config=args.config, checkpoint=args.checkpoint,
                  out=args.out, task=wrapper.task, images=source,
                  threads=torch.get_num_threads(), checks=[])
    print(f'checking on {source}, {torch.get_num_threads()} thread(s):')
    for batch in checks:
        figures = deployment.check_parity(model, session, batch)
        figures['task'] = wrapper.task
        report['checks'].append(figures)
        for line in deployment.format_figures(figures):
            print('  ' + line)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    worst = max(c['max_abs_diff'] for c in report['checks'])
    agree = min(c['argmax_agreement'] for c in report['checks'])
    ok = worst <= MAX_ABS_DIFF and agree >= MIN_ARGMAX_AGREEMENT
    print(f'parity {"OK" if ok else "NOT MET"} (max diff <= {MAX_ABS_DIFF},'
          f' argmax agreement >= {100 * MIN_ARGMAX_AGREEMENT}%)')
    if args.fail_over and not ok:
        raise SystemExit(1)
    return report


if __name__ == '__main__':
    main()
