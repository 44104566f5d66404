"""Training-step time and peak memory of DAS video backbones against 2D and 3D.

For every T in ``--frames`` and a fixed crop, one run measures a training step
(forward, cross-entropy on the frame-averaged logits, backward, SGD step) of:

- ``2D``: mmpretrain's ``ResNet`` on the N*T frames (no temporal mixing; T=1 is
  the plain 2D model on N images);
- ``TSM``: ``GSFResNet(temporal_module='tsm')``, the same ResNet with a
  temporal shift in every residual branch;
- ``GSF``: ``GSFResNet`` (Gate-Shift-Fuse in every block, the DAS default);
- ``3D``: the same ResNet inflated to 3D convolutions (every k x k conv with
  k > 1 becomes a 3 x k x k conv over time, 1 x 1 convs become 1 x 1 x 1, as
  I3D does), on the ``[N, C, T, H, W]`` clip. This is what DAS avoids; it is
  built here from torch layers and is not a shipped component.

and the share of a DAS step spent outside the network: making the T frames on
the device (``mmdas.video.warp_frames``, one batched ``grid_sample``) and
fusing the per-frame logits (mean). The inverse warp of segmentation maps is
timed by ``bench/bench_das_frames.py``.

Steps are interleaved over the arms so that load changes hit all of them;
the median is reported, and GSF / 2D also as the median of the per-round
ratios (each round runs the arms back to back). Peak memory on a GPU is
CUDA's ``max_memory_allocated`` over a step (model, gradients and optimiser
state included). A CPU has no such counter: there every arm and T is run
again in a fresh child process, which measures two things. The peak of live
tensors over one step (after one warm-up step), from the profiler's memory
timeline: model, gradients, optimiser state and activations, what
``max_memory_allocated`` counts on a GPU. And the process's peak resident
memory during two steps (``VmHWM``, reset before them) less its resident
memory once the model and the input exist: what the steps add, including
the CPU allocator's fragmentation (freed blocks it keeps), which differs
between two networks by more than their tensors do.
The table is printed as Markdown; ``--out`` also writes it to a file.

Examples::

    # GPU, ResNet-50, 224 px, 8 images per step
    PYTHONPATH=. python bench/bench_video_cost.py --device cuda
    # CPU, small
    OMP_NUM_THREADS=2 PYTHONPATH=. python bench/bench_video_cost.py \\
        --device cpu --depth 18 --crop 64 --batch 2 --iters 3
"""
import argparse
import json
import multiprocessing as mp
import os.path as osp
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mmdas  # noqa: E402,F401
from mmdas import geometry  # noqa: E402
from mmdas.video import warp_frames  # noqa: E402

ARMS = ('2D', 'TSM', 'GSF', '3D')


def inflate_to_3d(module: nn.Module) -> nn.Module:
    """Replace the 2D layers of ``module`` by their 3D (I3D-style) twins."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            kt = 3 if max(child.kernel_size) > 1 else 1
            new = nn.Conv3d(
                child.in_channels,
                child.out_channels,
                (kt, *child.kernel_size),
                stride=(1, *child.stride),
                padding=(kt // 2, *child.padding),
                dilation=(1, *child.dilation),
                groups=child.groups,
                bias=child.bias is not None)
        elif isinstance(child, nn.BatchNorm2d):
            new = nn.BatchNorm3d(child.num_features)
        elif isinstance(child, nn.MaxPool2d):
            new = nn.MaxPool3d((1, child.kernel_size, child.kernel_size),
                               (1, child.stride, child.stride),
                               (0, child.padding, child.padding))
        else:
            new = inflate_to_3d(child)
        setattr(module, name, new)
    return module


class Classifier(nn.Module):
    """Backbone + global average pool + linear; logits averaged over T."""

    def __init__(self, arm: str, depth: int, frames: int, classes: int):
        super().__init__()
        from mmpretrain.models.backbones import ResNet

        from mmdas.models.backbones import GSFResNet
        self.arm, self.frames = arm, frames
        if arm == '2D':
            self.backbone = ResNet(depth=depth)
        elif arm == '3D':
            self.backbone = inflate_to_3d(ResNet(depth=depth))
        else:
            self.backbone = GSFResNet(
                depth=depth, num_frames=frames,
                temporal_module=arm.lower())
        self.fc = nn.Linear(self.backbone.feat_dim, classes)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``video``: ``[N, T, C, H, W]`` -> ``[N, classes]``."""
        n, t = video.shape[:2]
        if self.arm == '3D':
            feat = self.backbone(video.transpose(1, 2))[-1]  # N, C, T, h, w
            return self.fc(feat.mean(dim=(2, 3, 4)))
        if self.arm == '2D':
            feat = self.backbone(video.flatten(0, 1))[-1]
        else:  # the DAS interface layout, [N, T*C, H, W]
            feat = self.backbone(video.flatten(1, 2))[-1]
        logits = self.fc(feat.mean(dim=(2, 3)))
        return logits.view(n, t, -1).mean(dim=1)


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed_step(model, opt, video, labels, device):
    """One training step; returns (seconds, peak bytes or None)."""
    cuda = device.startswith('cuda')
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    loss = F.cross_entropy(model(video), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sync(device)
    seconds = time.perf_counter() - start
    return seconds, (torch.cuda.max_memory_allocated() if cuda else None)


def das_overhead(images, frames, device, iters):
    """Median seconds of on-device frame making and of the mean fusion."""
    n, c, h, w = images.shape
    mats = geometry.op_matrices('rotate', 5.0,
                                geometry.frame_offsets(frames), h, w)
    mats = mats.to(device)
    logits = torch.randn(n * frames, 1000, device=device)
    make, fuse = [], []
    for _ in range(iters + 1):
        sync(device)
        t0 = time.perf_counter()
        warp_frames(images[:, None].expand(-1, frames, -1, -1, -1), mats,
                    background=0.0)
        sync(device)
        t1 = time.perf_counter()
        logits.view(n, frames, -1).mean(dim=1)
        sync(device)
        make.append(t1 - t0)
        fuse.append(time.perf_counter() - t1)
    return median(make[1:]), median(fuse[1:])


def _status_bytes(field: str) -> int:
    """``VmRSS`` (resident memory now) or ``VmHWM`` (its peak) of this
    process, from Linux's ``/proc/self/status``."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'no {field} in /proc/self/status (Linux only)')


def tensor_peak(step) -> int:
    """Peak bytes of live CPU tensors while ``step()`` runs, by the
    profiler's memory timeline (every tensor the step touches or makes,
    whatever the allocator does with freed blocks)."""
    with torch.profiler.profile(profile_memory=True, record_shapes=True,
                                with_stack=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # deprecated in favour of CUDA's memory snapshots, which a CPU lacks
        warnings.simplefilter('ignore', FutureWarning)
        path = osp.join(tmp, 'timeline.raw.json')
        prof.export_memory_timeline(path, device='cpu')
        with open(path) as f:
            _, sizes = json.load(f)  # bytes per category at each event
    return max(sum(at) for at in sizes)


def _cpu_step_peak(arm, frames, args):
    """Child process: the resident memory two training steps add, and the
    peak of live tensors over a third (``{'rss': ..., 'tensors': ...}``)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.crop, args.crop)
    video = images[:, None].expand(-1, frames, -1, -1, -1).contiguous()
    labels = torch.randint(0, args.classes, (args.batch, ))
    model = Classifier(arm, args.depth, frames, args.classes).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    before = _status_bytes('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # restart VmHWM here: imports peak higher than a step
    for _ in range(2):  # the second step holds momentum buffers as well
        timed_step(model, opt, video, labels, 'cpu')
    rss = _status_bytes('VmHWM') - before
    # the last step's gradients go now: the profiler cannot see the freeing
    # of a tensor made before it started, and would count them throughout
    opt.zero_grad(set_to_none=True)
    return dict(rss=rss, tensors=tensor_peak(
        lambda: timed_step(model, opt, video, labels, 'cpu')))


def cpu_step_peaks(frames, args):
    """Peak memory of a step of every arm, each in a fresh process:
    ``{arm: {'rss': bytes, 'tensors': bytes}}`` (:func:`_cpu_step_peak`)."""
    peaks = {}
    for arm in args.arms:
        # a new pool per arm: a fresh process whose errors reach the caller
        with ProcessPoolExecutor(
                1, mp_context=mp.get_context('spawn')) as pool:
            peaks[arm] = pool.submit(_cpu_step_peak, arm, frames,
                                     args).result()
    return peaks


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def measure(frames, args):
    device = args.device
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.crop, args.crop, device=device)
    video = images[:, None].expand(-1, frames, -1, -1, -1).contiguous()
    labels = torch.randint(0, args.classes, (args.batch, ), device=device)
    models, opts = {}, {}
    for arm in args.arms:
        models[arm] = Classifier(arm, args.depth, frames,
                                 args.classes).to(device).train()
        opts[arm] = torch.optim.SGD(models[arm].parameters(), lr=1e-3,
                                    momentum=0.9)
    times = {arm: [] for arm in args.arms}
    peaks = {arm: 0 for arm in args.arms}
    for it in range(args.iters + 1):  # first round is a warm-up
        for arm in args.arms:
            sec, peak = timed_step(models[arm], opts[arm], video, labels,
                                   device)
            if it:  # the warm-up also runs cuDNN's algorithm search
                times[arm].append(sec)
                if peak is not None:
                    peaks[arm] = max(peaks[arm], peak)
    make, fuse = das_overhead(images, frames, device, args.iters)
    del models, opts
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    elif not args.no_cpu_memory:
        peaks = cpu_step_peaks(frames, args)
    return times, peaks, make, fuse


def per_round(times, arm, base):
    """The median over rounds of ``arm``'s step time over ``base``'s in the
    same round (they ran back to back): steadier than the ratio of the
    medians when the machine's speed drifts between rounds."""
    return median([a / b for a, b in zip(times[arm], times[base])])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--crop', type=int, default=224)
    parser.add_argument('--batch', type=int, default=8,
                        help='images per step')
    parser.add_argument('--classes', type=int, default=1000)
    parser.add_argument('--frames', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--arms', nargs='+', default=list(ARMS),
                        choices=ARMS)
    parser.add_argument('--iters', type=int, default=10,
                        help='timed steps per arm (after one warm-up)')
    parser.add_argument('--out', help='also write the Markdown table here')
    parser.add_argument('--no-cpu-memory', action='store_true',
                        help='on a CPU, skip the peak-memory runs (one '
                        'child process per arm and T)')
    args = parser.parse_args()
    args.threads = torch.get_num_threads()
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    if args.device.startswith('cuda'):
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name()
    else:
        name = f'CPU, {torch.get_num_threads()} threads'
    head = (f'ResNet-{args.depth}, {args.batch} images of {args.crop}x'
            f'{args.crop} per step, {args.classes} classes, median of '
            f'{args.iters} steps; {name}; torch {torch.__version__}')
    print(head, flush=True)
    cuda = args.device.startswith('cuda')
    mem = cuda or not args.no_cpu_memory
    # (title, the figure in a measured peaks[arm]) per memory column
    kinds = ([('peak (GiB)', None)] if cuda else
             [('peak tensors (GiB)', 'tensors'),
              ('step peak RSS (GiB)', 'rss')]) if mem else []
    mem_columns = [(f'{arm} {title}', arm, key) for title, key in kinds
                   for arm in args.arms]
    both = 'GSF' in args.arms and '2D' in args.arms
    titles = (['T'] + [f'{a} step (ms)' for a in args.arms] +
              [title for title, _, _ in mem_columns] +
              ['GSF / 3D', 'GSF / 2D', 'GSF / 2D, per round'] +
              (['GSF / 2D memory'] if mem and both else []) +
              ['frames + fusion / GSF step'])
    lines = [head, '', '| ' + ' | '.join(titles) + ' |',
             '|---' * len(titles) + '|']
    for frames in args.frames:
        rounds, peaks, make, fuse = measure(frames, args)
        times = {arm: median(v) for arm, v in rounds.items()}

        def memory(arm, key):
            return peaks[arm] if key is None else peaks[arm][key]

        row = [str(frames)] + [f'{1e3 * times[a]:.1f}' for a in args.arms]
        row += [f'{memory(a, key) / 2**30:.2f}' for _, a, key in mem_columns]
        ratio = (lambda a, b: f'{times[a] / times[b]:.2f}'
                 if a in times and b in times else '-')
        share = (f'{100 * (make + fuse) / times["GSF"]:.2f}%'
                 if 'GSF' in times else '-')
        steady = f'{per_round(rounds, "GSF", "2D"):.3f}' if both else '-'
        row += [ratio('GSF', '3D'), ratio('GSF', '2D'), steady]
        if mem and both:
            key = kinds[0][1]  # on a CPU: live tensors, not RSS
            row.append(f'{memory("GSF", key) / memory("2D", key):.3f}')
        row.append(share)
        lines.append('| ' + ' | '.join(row) + ' |')
        print(lines[-1], flush=True)
    table = '\n'.join(lines)
    print('\n' + table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
