"""Picture a trained segmentor's view of one test sample.

For a DAS model: the T frames it saw (each titled with its offset and
transform), then the input image, the ground truth and the fused prediction,
with a legend of the classes; and an animated GIF of the video beside the
fused prediction (``--out`` with the suffix ``.gif``). Works for plain 2D
segmentors too (one frame, no GIF).

Usage::

    python tools/visualize_prediction.py CONFIG CHECKPOINT --out PATH \\
        [--index I] [--cfg-options k=v ...]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdas  # noqa: E402,F401
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from PIL import Image  # noqa: E402

from mmdas.visualization import (das_prediction_views,  # noqa: E402
                                 prediction_gif_frames, prediction_picture,
                                 save_gif)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument(
        '--out', required=True,
        help='output PNG path; a DAS model\'s GIF goes next to it (.gif)')
    parser.add_argument(
        '--index', type=int, default=0, help='test sample to show')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.apis import init_model
    from mmseg.registry import DATASETS
    model = init_model(cfg, args.checkpoint, device=args.device)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    if not 0 <= args.index < len(dataset):
        raise IndexError(f'--index {args.index}: the test set has '
                         f'{len(dataset)} samples')
    views = das_prediction_views(model,
                                 pseudo_collate([dataset[args.index]]))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    Image.fromarray(prediction_picture(views)).save(args.out)
    written = dict(png=args.out)
    if len(views['frames']) > 1:
        written['gif'] = save_gif(prediction_gif_frames(views),
                                  osp.splitext(args.out)[0] + '.gif')
    print('wrote ' + ', '.join(written.values()))
    return written


if __name__ == '__main__':
    main()
