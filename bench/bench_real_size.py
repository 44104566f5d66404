"""Peak training memory and step time of the shipped paper configs.

Each measurement is one fresh process that builds the shipped config as
``tools/train.py`` does (mmengine's ``Runner``: the config's own model, data
preprocessor, dataset, pipeline, loss and optimiser; ``SyncBN`` reverts to
``BN`` in one process), on a few synthetic images written in the dataset's
real folder layout by the test fixtures' generators (``tests/fixtures.py``),
with the crop and the images per step set on the command line, and runs
``--steps`` training steps (``model.train_step``: forward, loss, backward,
optimiser step). The first step is a warm-up (cuDNN's algorithm search,
optimiser state); the median of the others is the step time.

Peak memory: on a GPU, CUDA's ``max_memory_allocated`` over the steps (model,
gradients, optimiser state and activations; not the CUDA context or the
caching allocator's slack). On a CPU, the process's peak resident memory
during the steps (``VmHWM``, reset before them) less its resident memory
before them, plus the size of the weights: what a GPU would hold the same
way, up to the allocators' differences.

With several crops of one config, the table also gives the least-squares
line ``memory = a + b * pixels`` (pixels = images x crop area per step) and
its value at the config's own crop and images per GPU: the extrapolation a
CPU can offer where no GPU is lent (memory only; step times on a shared CPU
are too far from linear to extrapolate). Activation memory grows linearly with
the pixels at a fixed network, so the line is the model; the error of the
fit is printed.

Examples::

    # CPU: reduced crops, 1 image (x 8 frames) per step, with and without
    # with_cp; the 2D twin needs 2 images (its ASPP image-pool BN cannot
    # train on one value per channel)
    OMP_NUM_THREADS=2 PYTHONPATH=. python bench/bench_real_size.py \\
        --configs das_deeplabv3plus_cityscapes \\
        --crops 64x128 96x192 128x256 --images 1 --with-cp both
    OMP_NUM_THREADS=2 PYTHONPATH=. python bench/bench_real_size.py \\
        --configs plain_deeplabv3plus_cityscapes \\
        --crops 64x128 96x192 128x256 --images 2
    # GPU: the real crops and images per GPU, with and without AMP
    PYTHONPATH=. python bench/bench_real_size.py --device cuda --real \\
        --with-cp both --amp both
"""
import argparse
import json
import multiprocessing as mp
import os
import os.path as osp
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tests'))  # the fixtures' generators
sys.path.insert(0, osp.join(ROOT, 'bench'))

#: config -> (fixture, the shipped crop (h, w), images per GPU as shipped)
PAPER_CONFIGS = {
    'das_deeplabv3plus_cityscapes': ('cityscapes', (512, 1024), 2),
    'plain_deeplabv3plus_cityscapes': ('cityscapes', (512, 1024), 2),
    'das_deeplabv3plus_voc12aug': ('voc', (512, 512), 4),
    'plain_deeplabv3plus_voc12aug': ('voc', (512, 512), 4),
    'das_resnet50_imagenet': ('imagenet', (224, 224), 32),
    'plain_resnet50_imagenet': ('imagenet', (224, 224), 32),
    'das_resnet18_cifar10': ('cifar', (32, 32), 16),
    'plain_resnet18_cifar10': ('cifar', (32, 32), 16),
}


def _write_fixture(kind, root, crop, images):
    """Images in the dataset's folder layout, at least the crop in size."""
    import fixtures
    count = max(images, 2)
    h, w = crop
    if kind == 'cityscapes':
        return fixtures.make_cityscapes(
            osp.join(root, 'cityscapes'), num_train=count, size=(h, w))
    if kind == 'voc':
        return fixtures.make_voc_aug(
            osp.join(root, 'VOCdevkit', 'VOC2012'), num_train=count,
            num_aug=count, size=(h, w))
    if kind == 'imagenet':
        return fixtures.make_imagenet(
            osp.join(root, 'imagenet'), per_class=(count + 1) // 2,
            size=max(h, 48))
    return fixtures.make_class_folders(
        osp.join(root, 'cifar10'), per_class=(count + 1) // 2, size=h)


def _config(name, root, crop, images, with_cp, amp):
    """The shipped config on the fixture at ``crop`` and ``images``/step."""
    from mmengine.config import Config
    from fixtures import shrink_config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name + '.py'))
    kind, shipped_crop, _ = PAPER_CONFIGS[name]
    if kind == 'cifar':  # CIFAR10 checks md5 sums: read class folders
        pipeline = cfg.train_dataloader.dataset.pipeline
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key].dataset = dict(
                type='CustomDataset', data_prefix='train',
                pipeline=[dict(type='LoadImageFromFile')] + list(pipeline))
        cfg.model.head.num_classes = 2
    # the resize before the crop keeps its ratio to the crop
    scale = None
    for step in cfg.train_dataloader.dataset.get('pipeline', []):
        if step.get('type') == 'RandomResize':
            f = crop[0] / shipped_crop[0]
            scale = tuple(int(round(s * f)) for s in step['scale'])
    cudnn = cfg.get('env_cfg', {}).get('cudnn_benchmark', False)
    shrink_config(cfg, root, crop=crop, scale=scale or crop, iters=2,
                  batch_size=images)
    cfg.env_cfg.cudnn_benchmark = cudnn  # as shipped (a GPU's algorithms)
    cfg.model.backbone.with_cp = with_cp
    if amp:  # what tools/train.py --amp does
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    return cfg


def measure(name, crop, images, with_cp, amp, device, steps, threads):
    """Child process: one config at one size; returns a result dict."""
    import torch
    torch.set_num_threads(threads)
    import mmdas  # noqa: F401
    from bench_video_cost import _status_bytes
    from mmengine.runner import Runner
    from mmengine.logging import MMLogger
    with tempfile.TemporaryDirectory() as tmp:
        kind = PAPER_CONFIGS[name][0]
        root = _write_fixture(kind, tmp, crop, images)
        cfg = _config(name, root, crop, images, with_cp, amp)
        cfg.work_dir = osp.join(tmp, 'work')
        cfg.log_level = 'WARNING'
        runner = Runner.from_cfg(cfg)
        MMLogger.get_current_instance().setLevel('WARNING')
        model = runner.model
        optim = runner.build_optim_wrapper(cfg.optim_wrapper)
        runner.optim_wrapper = optim
        loader = runner.build_dataloader(cfg.train_dataloader)
        data = next(iter(loader))
        params = sum(p.numel() * p.element_size()
                     for p in model.parameters())
        frames = images * getattr(cfg.model.backbone, 'num_frames', 1)
        cuda = device.startswith('cuda')
        model.train()
        times, peak = [], 0
        before = _status_bytes('VmRSS') if not cuda else 0
        if not cuda:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # restart VmHWM here
        for step in range(steps):
            if cuda:
                torch.cuda.synchronize()
                if step == 1:  # the warm-up's cuDNN search is not a step
                    torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            losses = model.train_step(data, optim)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            loss = sum(v for k, v in losses.items() if 'loss' in k)
            if not torch.isfinite(torch.as_tensor(loss)).all():
                raise RuntimeError(f'{name}: loss {loss} at step {step}')
        if cuda:
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _status_bytes('VmHWM') - before + params
        timed = sorted(times[1:] or times)
        return dict(config=name, crop=list(crop), images=images,
                    frames=frames, with_cp=with_cp, amp=amp,
                    pixels=images * crop[0] * crop[1],
                    step_s=timed[len(timed) // 2], peak_gib=peak / 2**30,
                    device=device)


def fit_line(points):
    """Least squares ``y = a + b x`` of ``(x, y)`` points; (a, b, max
    relative residual)."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx)**2 for p in points)
    b = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.
    a = my - b * mx
    res = max(abs(a + b * x - y) / y for x, y in points)
    return a, b, res


def table(results, real):
    """Markdown: every measurement, then the fitted extrapolations."""
    lines = ['| config | crop | images x T = frames | with_cp | AMP | step '
             '(s) | peak memory (GiB) |', '|---|---|---|---|---|---|---|']
    for r in results:
        lines.append(
            f"| {r['config']} | {r['crop'][0]}x{r['crop'][1]} | "
            f"{r['images']} x {r['frames'] // r['images']} = {r['frames']} | "
            f"{'yes' if r['with_cp'] else 'no'} | "
            f"{'yes' if r['amp'] else 'no'} | {r['step_s']:.2f} | "
            f"{r['peak_gib']:.2f} |")
    groups = {}
    for r in results:
        groups.setdefault((r['config'], r['with_cp'], r['amp']), []).append(r)
    fits = [(k, v) for k, v in groups.items()
            if len({r['pixels'] for r in v}) >= 2]
    if fits and not real:
        # memory only: step times on a shared CPU are not linear enough in
        # the pixels for a line to say anything at 10-100x the crop
        lines += ['', '| config | with_cp | AMP | shipped crop x images per '
                  'GPU | memory at the shipped size (GiB, extrapolated) | '
                  'fit: max residual |', '|---|---|---|---|---|---|']
        for (name, cp, amp), runs in fits:
            _, crop, images = PAPER_CONFIGS[name]
            pixels = images * crop[0] * crop[1]
            a, b, res = fit_line([(r['pixels'], r['peak_gib']) for r in runs])
            lines.append(
                f"| {name} | {'yes' if cp else 'no'} | "
                f"{'yes' if amp else 'no'} | {crop[0]}x{crop[1]} x {images} "
                f'| {a + b * pixels:.1f} | {100 * res:.1f} % |')
    return '\n'.join(lines)


def _both(value):
    return {'yes': [True], 'no': [False], 'both': [False, True]}[value]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('--configs', nargs='+', default=list(PAPER_CONFIGS),
                        choices=list(PAPER_CONFIGS))
    parser.add_argument('--crops', nargs='+', default=[],
                        help='HxW crops to measure (default: the shipped '
                        'crop, with --real)')
    parser.add_argument('--images', type=int, nargs='+', default=[1],
                        help='images per step (each is measured)')
    parser.add_argument('--real', action='store_true',
                        help="each config's own crop and images per GPU")
    parser.add_argument('--with-cp', default='no',
                        choices=['no', 'yes', 'both'])
    parser.add_argument('--amp', default='no', choices=['no', 'yes', 'both'],
                        help='AmpOptimWrapper (fp16; needs a GPU)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--steps', type=int, default=3,
                        help='training steps per measurement (the first is '
                        'a warm-up)')
    parser.add_argument('--out', help='also write the table (Markdown) and '
                        'a .json of the results here')
    args = parser.parse_args()
    import torch
    threads = torch.get_num_threads()
    if args.device.startswith('cuda'):
        name = torch.cuda.get_device_name()
    else:
        name = f'CPU, {threads} threads'
    jobs = []
    for config in args.configs:
        _, shipped_crop, shipped_images = PAPER_CONFIGS[config]
        if args.real:
            sizes = [(shipped_crop, shipped_images)]
        else:
            sizes = [(tuple(int(v) for v in c.split('x')), n)
                     for c in args.crops for n in args.images]
        for crop, images in sizes:
            for cp in _both(args.with_cp):
                for amp in _both(args.amp):
                    jobs.append((config, crop, images, cp, amp))
    head = (f'{name}; torch {torch.__version__}; {args.steps} steps per '
            'measurement (the first is a warm-up), each in a fresh process')
    print(head, flush=True)
    results = []
    for config, crop, images, cp, amp in jobs:
        with ProcessPoolExecutor(
                1, mp_context=mp.get_context('spawn')) as pool:
            try:
                r = pool.submit(measure, config, crop, images, cp, amp,
                                args.device, args.steps, threads).result()
            except Exception as err:  # e.g. out of memory: say so, go on
                print(f'{config} {crop} x {images} with_cp={cp} amp={amp}: '
                      f'FAILED: {type(err).__name__}: {err}', flush=True)
                continue
        results.append(r)
        print(json.dumps(r), flush=True)
        if args.out:  # after every measurement: a time limit keeps them
            _write(args.out, head, results, args.real)
    print('\n' + head + '\n\n' + table(results, args.real))


def _write(path, head, results, real):
    with open(path, 'w') as f:
        f.write(head + '\n\n' + table(results, real) + '\n')
    with open(osp.splitext(path)[0] + '.json', 'w') as f:
        json.dump(results, f, indent=1)


if __name__ == '__main__':
    os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    main()
