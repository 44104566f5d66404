"""Fine-tune a 2D-trained network as GSF: ours vs the official GSF layout.

On the real Fashion-MNIST (Debian's ``dataset-fashion-mnist``, read
directly from its gzipped IDX files):

1. a 2D ResNet-18 (CIFAR stem, narrow: ``--width`` channels in the stem) is
   trained for ``--epochs-2d`` epochs on ``--train`` images;
2. its weights are loaded into GSF-ResNet-18s (``num_frames=--frames``,
   zero-gate init), one per variant:

   * ``ours``: the defaults (no channel interleave, fused channels x2): the
     video net starts as the 2D net on every frame;
   * ``official``: ``gsf_interleave=True, gsf_rescale_fusion=False``
     (the official GSF module; zero-gate init still, so the only difference
     is the layout);

3. each is fine-tuned for ``--epochs-ft`` epochs on the same images made
   into DAS videos (``translate_x``, symmetric profile) with the same seed
   and order, and its test accuracy (logits averaged over frames) is
   recorded before fine-tuning and after each epoch.

Results go to ``WORK_DIR/results.json``; a finished stage (the 2D model, a
variant) is skipped when the script runs again (resumable).

Example (the numbers in docs/models.md)::

    OMP_NUM_THREADS=1 nice -n 10 python bench/bench_gsf_start.py \\
        --work-dir work_dirs/bench_gsf_start
"""
import argparse
import gzip
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mmdas  # noqa: E402,F401
from mmdas.datasets.fashion_mnist import DEBIAN_FASHION_MNIST  # noqa: E402
from mmdas.policy import DASPolicy  # noqa: E402
from mmdas.video import stack_frames, warp_frames  # noqa: E402

VARIANTS = dict(
    ours=dict(),
    official=dict(gsf_interleave=True, gsf_rescale_fusion=False))
MEAN, STD = 72.94, 90.02


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/bench_gsf_start')
    parser.add_argument('--src', default=DEBIAN_FASHION_MNIST,
                        help='folder with the gzipped IDX files')
    parser.add_argument('--train', type=int, default=4000,
                        help='training images (first ones of the train set)')
    parser.add_argument('--test', type=int, default=2000,
                        help='test images (first ones of the test set)')
    parser.add_argument('--width', type=int, default=16,
                        help='channels of the stem and layer1')
    parser.add_argument('--frames', type=int, default=3)
    parser.add_argument('--magnitude', type=float, default=0.06,
                        help='translate_x per frame step (fraction)')
    parser.add_argument('--epochs-2d', type=int, default=2)
    parser.add_argument('--epochs-ft', type=int, default=1)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big')
             for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(src, prefix, count):
    images = read_idx(osp.join(src, f'{prefix}-images-idx3-ubyte.gz'))
    labels = read_idx(osp.join(src, f'{prefix}-labels-idx1-ubyte.gz'))
    x = (torch.from_numpy(images[:count].copy()).float()[:, None] - MEAN) / STD
    return x, torch.from_numpy(labels[:count].astype(np.int64))


def build(args, video, **gsf):
    from mmpretrain.registry import MODELS
    backbone = dict(type='ResNet_CIFAR', depth=18, in_channels=1,
                    stem_channels=args.width, base_channels=args.width)
    if video:
        backbone.update(type='GSFResNet_CIFAR', num_frames=args.frames, **gsf)
    width = args.width * 8
    head = dict(type='LinearClsHead', num_classes=10, in_channels=width)
    if video:
        head = dict(type='TemporalAvgClsHead', head=head,
                    num_frames=args.frames)
    model = MODELS.build(
        dict(type='ImageClassifier', backbone=backbone,
             neck=dict(type='GlobalAveragePooling'), head=head))
    model.init_weights()
    return model


def make_video(x, mats):
    """Normalised images -> DAS videos ``[N, T*C, H, W]``."""
    t = mats.shape[0]
    background = torch.full((x.shape[1], ), -MEAN / STD)
    return stack_frames(
        warp_frames(x[:, None].expand(-1, t, -1, -1, -1), mats, background))


def scores(model, x):
    feats = model.extract_feat(x)
    return model.head(feats)


def evaluate(model, x, y, mats, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            if mats is not None:
                xb = make_video(xb, mats)
            correct += int((scores(model, xb).argmax(1) == y[i:i + batch]
                            ).sum())
    return 100. * correct / len(x)


def train(model, x, y, mats, epochs, args, tag, on_epoch=None):
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9,
                          weight_decay=5e-4)
    losses = []
    for epoch in range(epochs):
        model.train()
        g = torch.Generator().manual_seed(args.seed + epoch)
        order = torch.randperm(len(x), generator=g)
        start, total = time.time(), 0.
        for step, i in enumerate(range(0, len(x), args.batch)):
            idx = order[i:i + args.batch]
            xb = x[idx]
            if mats is not None:
                xb = make_video(xb, mats)
            loss = F.cross_entropy(scores(model, xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss)
            if step % 20 == 0:
                print(f'[{tag}] epoch {epoch + 1}/{epochs} step {step} '
                      f'loss {float(loss):.3f} ({time.time() - start:.0f}s)',
                      flush=True)
        losses.append(total / (step + 1))
        if on_epoch is not None:
            on_epoch(epoch)
    return losses


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    results_path = osp.join(args.work_dir, 'results.json')
    results = json.load(open(results_path)) if osp.exists(
        results_path) else {}
    results['args'] = vars(args)

    def save():
        with open(results_path, 'w') as f:
            json.dump(results, f, indent=2)

    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    x, y = load_split(args.src, 'train', args.train)
    xt, yt = load_split(args.src, 't10k', args.test)
    mats = DASPolicy.from_dict(
        dict(transforms=[dict(op='translate_x', magnitude=args.magnitude)],
             num_frames=args.frames)).matrices(28, 28)

    ckpt_2d = osp.join(args.work_dir, '2d.pth')
    if osp.exists(ckpt_2d) and '2d' in results:
        print('2D model: done, loading', ckpt_2d)
        state = torch.load(ckpt_2d)
    else:
        model = build(args, video=False)
        start = time.time()
        losses = train(model, x, y, None, args.epochs_2d, args, '2d')
        results['2d'] = dict(train_loss=losses,
                             test_acc=evaluate(model, xt, yt, None),
                             seconds=round(time.time() - start))
        state = model.state_dict()
        torch.save(state, ckpt_2d)
        save()
    print('2D:', results['2d'])

    for name, gsf in VARIANTS.items():
        if name in results:
            print(f'{name}: done', results[name])
            continue
        torch.manual_seed(args.seed)
        model = build(args, video=True, **gsf)
        model.load_state_dict(state, strict=False)
        record = dict(test_acc=[evaluate(model, xt, yt, mats)])
        start = time.time()

        def on_epoch(_):
            record['test_acc'].append(evaluate(model, xt, yt, mats))

        record['train_loss'] = train(model, x, y, mats, args.epochs_ft, args,
                                     name, on_epoch)
        record['seconds'] = round(time.time() - start)
        results[name] = record
        save()
        print(f'{name}:', record)
    print(json.dumps({k: v for k, v in results.items() if k != 'args'},
                     indent=2))


if __name__ == '__main__':
    main()
