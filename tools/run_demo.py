"""The main job (``make demo``): data, training, testing, one mIoU line.

Steps:

1. write the embedded MNIST-digits segmentation set unless it exists
   (:func:`mmdas.datasets.ensure_embedded_dataset`; its test split draws on
   digits that the training split never uses);
2. with ``--pretrain`` only: train the segmentor's 2D backbone to classify
   the digits, as an mmpretrain job (``--pretrain-config``);
3. train ``--config`` with ``tools/train.py`` into ``--work-dir`` (with
   ``--pretrain``, its GSF backbone loads the 2D checkpoint of step 2
   through ``init_cfg``);
4. test the last checkpoint with ``tools/test.py`` (predictions under
   ``<work-dir>/predictions``);
5. picture the frames and the fused prediction of one test image
   (``<work-dir>/sample_prediction.png`` with titles and a class legend, and
   ``sample_prediction.gif``, the DAS video beside the fused prediction;
   ``tools/visualize_prediction.py``);
6. print the IoU of every class, where the files are and, on the last line,
   the test mIoU.

Training and testing run as subprocesses of the same Python, exactly as a
user would run the tools; ``--cfg-options`` go to the segmentation runs,
``--pretrain-cfg-options`` to the classification run.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmdas.datasets.embedded import (DEMO_CLS_SET, DEMO_SEG_LAYOUT,  # noqa
                                     DEMO_SEG_SET,
                                     ensure_embedded_dataset)

DEFAULTS = dict(
    config=osp.join('configs', 'das_deeplabv3plus_r18_embedded.py'),
    pretrain_config=osp.join('configs',
                             'resnet18v1c_embedded_digits_pretrain.py'),
    work_dir=osp.join('work_dirs', 'demo'),
    data_root=osp.join('data', 'embedded_digits'),
    cls_data_root=osp.join('data', 'embedded_digits_cls48'))


def parse_args():
    parser = argparse.ArgumentParser(
        description='Run the mmdas demo: data, train, test, mIoU')
    parser.add_argument(
        '--config',
        help='segmentation config to train and test (default: '
        'configs/das_deeplabv3plus_r18_embedded.py)')
    parser.add_argument(
        '--work-dir',
        help='where logs, checkpoints and predictions go (default: '
        'work_dirs/demo)')
    parser.add_argument(
        '--data-root',
        help='embedded data set folder, overriding the config\'s data_root '
        '(default: data/embedded_digits)')
    parser.add_argument(
        '--pretrain-config',
        help='mmpretrain config that trains the 2D backbone on the digits '
        'classification set first (default: '
        'configs/resnet18v1c_embedded_digits_pretrain.py)')
    parser.add_argument(
        '--pretrain', action='store_true',
        help='first train the backbone as a digits classifier (mmpretrain, '
        'training digits only) and start the segmentor from that 2D '
        'checkpoint')
    parser.add_argument(
        '--cls-data-root',
        help='classification set folder (default: '
        'data/embedded_digits_cls48)')
    parser.add_argument(
        '--num-train-cls', type=int, default=DEMO_CLS_SET['num_train'],
        help='classification training images (default: %(default)s)')
    parser.add_argument(
        '--num-val-cls', type=int, default=DEMO_CLS_SET['num_val'],
        help='classification validation images (default: %(default)s)')
    parser.add_argument(
        '--pretrain-cfg-options', nargs='+', default=[],
        help='key=value overrides for the classification run, e.g. '
        'train_cfg.max_epochs=1')
    parser.add_argument(
        '--num-train', type=int, default=DEMO_SEG_SET['num_train'],
        help='training images to write (default: %(default)s)')
    parser.add_argument(
        '--num-val', type=int, default=DEMO_SEG_SET['num_val'],
        help='test images to write (default: %(default)s)')
    parser.add_argument(
        '--size', type=int, default=DEMO_SEG_SET['canvas'],
        help='canvas side in pixels (default: %(default)s)')
    parser.add_argument(
        '--index', type=int, default=0,
        help='test image to picture (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options', nargs='+', default=[],
        help='key=value overrides for both train.py and test.py, e.g. '
        'train_cfg.max_iters=50')
    args = parser.parse_args()
    # defaults live in this repository; given paths are relative to the cwd
    for key, default in DEFAULTS.items():
        value = getattr(args, key)
        setattr(args, key, osp.join(REPO, default) if value is None else
                osp.abspath(value))
    return args


def run(cmd):
    """Run a tool with this repository importable; fail loudly."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    print('+ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=REPO)


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint mmengine's ``last_checkpoint`` file points to."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def run_logs(work_dir: str, since: float, suffix: str) -> list:
    """Log files (newest first) of the runs written after ``since``.

    mmengine's LoggerHook writes a run's text log and its metrics to
    ``<work_dir>/<timestamp>/<timestamp>{.log,.json}``.
    """
    candidates = [
        path for path in glob.glob(osp.join(work_dir, '*', '*' + suffix))
        if osp.getmtime(path) >= since
    ]
    return sorted(candidates, key=osp.getmtime, reverse=True)


def read_test_metrics(work_dir: str, since: float) -> dict:
    """Metrics of the newest run whose log was written after ``since``."""
    for path in run_logs(work_dir, since, '.json'):
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        for record in reversed(lines):
            if 'mIoU' in record:
                return record
    raise RuntimeError(f'no test metrics found under {work_dir}')


def read_class_iou(work_dir: str, since: float) -> Dict[str, float]:
    """Per-class IoU from the table mmseg's ``IoUMetric`` logs.

    Returns:
        dict: class name -> IoU in percent (NaN for a class absent from the
        test split), in the data set's class order.
    """
    for path in run_logs(work_dir, since, '.log'):
        with open(path) as f:
            text = f.read()
        if 'per class results:' not in text:
            continue
        table = text.rsplit('per class results:', 1)[1]
        rows = [line for line in table.splitlines() if line.startswith('|')]
        header = [cell.strip() for cell in rows[0].strip('|').split('|')]
        column = header.index('IoU')
        ious = {}
        for row in rows[1:]:
            cells = [cell.strip() for cell in row.strip('|').split('|')]
            ious[cells[0]] = float(cells[column])
        return ious
    raise RuntimeError(f'no per-class results found under {work_dir}')


def print_class_iou(ious: Dict[str, float]) -> None:
    """The per-class IoU table, and the weakest class."""
    print('IoU per class on the test split:')
    width = max(len(name) for name in ious)
    for name, iou in ious.items():
        bar = '#' * int(round(iou / 5)) if iou == iou else ''
        print(f'  {name:{width}s} {iou:6.2f} {bar}')
    present = {k: v for k, v in ious.items() if v == v}
    weakest = min(present, key=present.get)
    print(f'weakest class: {weakest} ({present[weakest]:.2f} IoU)')


def pretrain_backbone(args) -> str:
    """Train the 2D backbone as a digits classifier; its checkpoint."""
    made = ensure_embedded_dataset(
        args.cls_data_root,
        task='cls',
        num_train=args.num_train_cls,
        num_val=args.num_val_cls,
        size=DEMO_CLS_SET['size'],
        seed=args.seed,
        progress=True)
    print(f'classification data: {osp.abspath(args.cls_data_root)} '
          f'({"written now" if made else "already present"})', flush=True)
    work_dir = osp.join(args.work_dir, 'pretrain')
    run([
        sys.executable, osp.join(REPO, 'tools', 'train.py'),
        args.pretrain_config, '--work-dir', work_dir, '--cfg-options', *[
            f'{loader}_dataloader.dataset.data_root={args.cls_data_root}'
            for loader in ('train', 'val', 'test')
        ], *args.pretrain_cfg_options
    ])
    return last_checkpoint(work_dir)


def main():
    args = parse_args()
    made = ensure_embedded_dataset(
        args.data_root,
        task='seg',
        num_train=args.num_train,
        num_val=args.num_val,
        canvas=args.size,
        seed=args.seed,
        progress=True,
        # the demo set's layout: digits per canvas, their size, no overlaps
        **DEMO_SEG_LAYOUT)
    print(f'data: {osp.abspath(args.data_root)} '
          f'({"written now" if made else "already present"})', flush=True)

    options = [
        f'{loader}_dataloader.dataset.data_root={args.data_root}'
        for loader in ('train', 'val', 'test')
    ] + args.cfg_options
    start = time.time()
    train_options = list(options)
    if args.pretrain:
        backbone = pretrain_backbone(args)
        # the GSF backbone loads the 2D classifier's backbone weights
        train_options += [
            'model.backbone.init_cfg.type=Pretrained',
            f'model.backbone.init_cfg.checkpoint={backbone}',
            'model.backbone.init_cfg.prefix=backbone.'
        ]
    run([
        sys.executable, osp.join(REPO, 'tools', 'train.py'), args.config,
        '--work-dir', args.work_dir, '--cfg-options', *train_options
    ])
    train_s = time.time() - start

    checkpoint = last_checkpoint(args.work_dir)
    pred_dir = osp.join(args.work_dir, 'predictions')
    start = time.time()
    run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), args.config, checkpoint,
        '--work-dir', args.work_dir, '--out', pred_dir, '--cfg-options',
        *options
    ])
    metrics = read_test_metrics(args.work_dir, since=start)
    ious = read_class_iou(args.work_dir, since=start)
    picture = osp.join(args.work_dir, 'sample_prediction.png')
    run([
        sys.executable,
        osp.join(REPO, 'tools', 'visualize_prediction.py'), args.config,
        checkpoint, '--out', picture, '--index', str(args.index),
        '--cfg-options', *options
    ])
    animation = osp.splitext(picture)[0] + '.gif'

    print()
    print_class_iou(ious)
    what = 'training (backbone as a classifier, then the segmentor)' \
        if args.pretrain else 'training'
    print(f'{what} took {train_s / 60:.1f} min; logs and checkpoints: '
          f'{osp.abspath(args.work_dir)}')
    print(f'checkpoint: {osp.abspath(checkpoint)}')
    print(f'test predictions (PNG label maps): {osp.abspath(pred_dir)}')
    print('pictures of test image '
          f'{args.index}:\n  {osp.abspath(picture)}  (the frames the model '
          'saw, the input image, the ground truth and the fused prediction)')
    if osp.exists(animation):
        print(f'  {osp.abspath(animation)}  (animated: the DAS video beside '
              'the fused prediction)')
    print(f'FINAL mIoU (test split, {osp.basename(args.config)}): '
          f'{metrics["mIoU"]:.2f}')


if __name__ == '__main__':
    main()
