"""The main job (``make demo``): data, training, testing, one mIoU line.

Steps:

1. write the embedded MNIST-digits segmentation set unless it exists
   (:func:`mmdas.datasets.ensure_embedded_dataset`);
2. train ``--config`` with ``tools/train.py`` into ``--work-dir``;
3. test the last checkpoint with ``tools/test.py`` (predictions under
   ``<work-dir>/predictions``);
4. picture the frames and the fused prediction of one test image
   (``<work-dir>/sample_prediction.png``, ``tools/visualize_prediction.py``);
5. print the test mIoU and where the files are.

Training and testing run as subprocesses of the same Python, exactly as a
user would run the tools; ``--cfg-options`` go to both.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmdas.datasets.embedded import ensure_embedded_dataset  # noqa: E402

DEFAULTS = dict(
    config=osp.join('configs', 'das_deeplabv3plus_r18_embedded.py'),
    work_dir=osp.join('work_dirs', 'demo'),
    data_root=osp.join('data', 'embedded_digits'))


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
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--size', type=int, default=96)
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


def read_test_metrics(work_dir: str, since: float) -> dict:
    """Metrics of the newest run whose log was written after ``since``.

    mmengine's LoggerHook writes a test run's metrics to
    ``<work_dir>/<timestamp>/<timestamp>.json``.
    """
    candidates = [
        path for path in glob.glob(osp.join(work_dir, '*', '*.json'))
        if osp.getmtime(path) >= since
    ]
    for path in sorted(candidates, key=osp.getmtime, reverse=True):
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        for record in reversed(lines):
            if 'mIoU' in record:
                return record
    raise RuntimeError(f'no test metrics found under {work_dir}')


def main():
    args = parse_args()
    made = ensure_embedded_dataset(
        args.data_root,
        task='seg',
        num_train=args.num_train,
        num_val=args.num_val,
        canvas=args.size,
        seed=args.seed)
    print(f'data: {osp.abspath(args.data_root)} '
          f'({"written now" if made else "already present"})', flush=True)

    options = [
        f'{loader}_dataloader.dataset.data_root={args.data_root}'
        for loader in ('train', 'val', 'test')
    ] + args.cfg_options
    start = time.time()
    run([
        sys.executable, osp.join(REPO, 'tools', 'train.py'), args.config,
        '--work-dir', args.work_dir, '--cfg-options', *options
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
    picture = osp.join(args.work_dir, 'sample_prediction.png')
    run([
        sys.executable,
        osp.join(REPO, 'tools', 'visualize_prediction.py'), args.config,
        checkpoint, '--out', picture, '--cfg-options', *options
    ])

    print(f'training took {train_s / 60:.1f} min; logs and checkpoints: '
          f'{osp.abspath(args.work_dir)}; test predictions: '
          f'{osp.abspath(pred_dir)}')
    print(f'checkpoint: {osp.abspath(checkpoint)}')
    print(f'frames and fused prediction of a test image: '
          f'{osp.abspath(picture)}')
    print(f'FINAL mIoU (test split, {osp.basename(args.config)}): '
          f'{metrics["mIoU"]:.2f}')


if __name__ == '__main__':
    main()
