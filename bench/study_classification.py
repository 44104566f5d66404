"""Evidence study: DAS against the augmentations a user already has, on the
real Fashion-MNIST (issue 12, classification).

Arms (one ``ResNet_CIFAR``-18 of width ``--width``, the same schedule, data
subset and seeds for every arm):

- ``plain``: random crop (padding 2) + horizontal flip
  (``configs/plain_resnet18_fashionmnist.py``), the baseline;
- ``randaugment``, ``autoaugment``: crop + flip, then mmpretrain's
  ``RandAugment`` (``timm_increasing``, 2 ops, level 9, std 0.5) or
  ``AutoAugment`` (``imagenet`` policies), padding with black (0), the
  Fashion-MNIST background. Several of their ops (Contrast, ColorTransform,
  Equalize, AutoContrast) only take 3-channel images, so the grey image is
  made 3-channel (equal channels) around them and grey again after
  (torchvision ``Grayscale`` through mmpretrain's wrapper; exact for grey);
- ``trivialaugment``: crop + flip, then torchvision's ``TrivialAugmentWide``
  through mmpretrain's ``torchvision/`` wrapper (``NumpyToPIL`` /
  ``PILToNumpy`` around it);
- ``das_gsf``: DAS + GSF with the fixed, unsearched op of
  ``configs/das_resnet18_fashionmnist.py`` (``translate_x`` 0.03/step);
- ``das_gsf_searched``: DAS + GSF with the policy file of
  ``--searched-policy`` (``policy.json`` that ``DASSearchHook`` writes after
  ``configs/das_search_resnet18_fashionmnist.py``); skipped without it;
- ``das_tsm``: as ``das_gsf`` with TSM instead of GSF;
- ``das_none``: as ``das_gsf`` with no temporal module: the frames only
  meet in the averaged logits. Against ``das_gsf`` this separates what the
  video does from what the temporal module does.

Two comparisons: at equal epochs (the paper's protocol), and with
``--equal-compute`` at equal training compute: every 2D arm also trained for
T x the epochs (``<arm>_x<T>``), T the DAS frames.

Every run is ``tools/train.py`` and then ``tools/test.py`` on the test set, in
subprocesses; see ``bench/study_common.py`` for what is measured and how the
study resumes. Results: ``<study-dir>/results.json``, a Markdown table
(``--md``) and a plot (``--png``).

Examples::

    # GPU, 3 seeds, 8 runs at a time
    PYTHONPATH=. python bench/study_classification.py --device cuda \\
        --jobs 8 --epochs 10 --equal-compute \\
        --searched-policy work_dirs/search_fmnist/policy.json
    # CPU smoke size
    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/study_classification.py \\
        --device cpu --seeds 0 --arms plain das_gsf --epochs 1 \\
        --train-subset 256 --test-subset 256 --width 8 --study-dir /tmp/s
"""
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import study_common as common  # noqa: E402

REPO = common.REPO
PLAIN = osp.join(REPO, 'configs', 'plain_resnet18_fashionmnist.py')
DAS = osp.join(REPO, 'configs', 'das_resnet18_fashionmnist.py')
DAS_FRAMES = 8  # num_frames of configs/das_resnet18_fashionmnist.py

CROP_FLIP = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
PACK = [dict(type='PackInputs')]


def _grey_channels(channels: int) -> list:
    return [
        dict(type='NumpyToPIL'),
        dict(type='torchvision/Grayscale', num_output_channels=channels),
        dict(type='PILToNumpy'),
    ]


def _on_3_channels(augment: dict) -> list:
    return _grey_channels(3) + [augment] + _grey_channels(1)


PIPELINES = dict(
    randaugment=CROP_FLIP + _on_3_channels(
        dict(
            type='RandAugment',
            policies='timm_increasing',
            num_policies=2,
            total_level=10,
            magnitude_level=9,
            magnitude_std=0.5,
            hparams=dict(pad_val=0))) + PACK,
    autoaugment=CROP_FLIP + _on_3_channels(
        dict(type='AutoAugment', policies='imagenet',
             hparams=dict(pad_val=0))) + PACK,
    trivialaugment=CROP_FLIP + [
        dict(type='NumpyToPIL'),
        dict(type='torchvision/TrivialAugmentWide'),
        dict(type='PILToNumpy'),
    ] + PACK,
)

# name -> (description, config, extra model --cfg-options, is a 2D arm)
ARMS = {
    'plain': ('crop + flip (baseline)', PLAIN, [], True),
    'randaugment': ('crop + flip + RandAugment (mmpretrain)', PLAIN, [], True),
    'autoaugment': ('crop + flip + AutoAugment (mmpretrain)', PLAIN, [], True),
    'trivialaugment': ('crop + flip + TrivialAugmentWide (torchvision)',
                       PLAIN, [], True),
    'das_gsf': ('DAS + GSF, fixed op (translate_x 0.03)', DAS, [], False),
    'das_gsf_searched': ('DAS + GSF, searched policy', DAS, [], False),
    'das_tsm': ('DAS + TSM, fixed op', DAS,
                ['model.backbone.temporal_module=tsm'], False),
    'das_none': ('DAS, no temporal module (frames averaged)', DAS,
                 ['model.backbone.temporal_module=None'], False),
}


def parse_args(argv=None):
    parser = common.study_parser(
        'classification',
        'Fashion-MNIST evidence study: DAS vs augmentations', __doc__,
        ARMS)
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument(
        '--width', type=int, default=16,
        help='ResNet_CIFAR stem/base channels (64 = the full ResNet-18)')
    parser.add_argument(
        '--num-frames', type=int, default=DAS_FRAMES,
        help='T of the fixed-policy DAS arms (the searched policy brings '
        'its own)')
    parser.add_argument(
        '--train-subset', type=int,
        help='train on the first N training images (the same for every '
        'arm); default: all 60,000')
    parser.add_argument(
        '--test-subset', type=int,
        help='test on the first N test images (smoke tests only)')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--test-batch', type=int, default=256)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument(
        '--equal-compute', action='store_true',
        help='also train every 2D arm for T x the epochs')
    parser.add_argument(
        '--equal-compute-arms', nargs='+', metavar='ARM',
        choices=[a for a, spec in ARMS.items() if spec[3]],
        help='with --equal-compute: only these 2D arms get the T x run '
        '(default: every 2D arm of --arms)')
    parser.add_argument(
        '--searched-policy',
        help='DAS policy JSON selected by the search (DASSearchHook writes '
        '<work_dir>/policy.json); without it das_gsf_searched is skipped')
    parser.add_argument('--data-root', default=osp.join('data',
                                                        'fashion_mnist'))
    return parser.parse_args(argv)


def searched_policy_options(path: str) -> tuple:
    """Model options of the searched arm and its T (the policy's T sets the
    backbone's)."""
    with open(path) as f:
        policy = json.load(f)
    if 'transforms' not in policy or 'num_frames' not in policy:
        raise ValueError(
            f'--searched-policy {path}: not a DAS policy file (expected '
            'keys transforms, num_frames, profile; got '
            f'{sorted(policy)}). A multi-node search writes a frozen cell '
            'instead; this study takes a single-edge policy.')
    frames = policy['num_frames']
    return [
        f'model.data_preprocessor.policy={osp.abspath(path)}',
        f'model.backbone.num_frames={frames}'
    ], frames


def arm_config(study_dir: str, arm: str, config: str) -> str:
    """A 2D arm with its own pipeline gets a config inheriting ``config``."""
    if arm not in PIPELINES:
        return config
    path = osp.join(osp.abspath(study_dir), 'configs', f'{arm}.py')
    common.write_config(
        path, config,
        f'train_dataloader = dict(dataset=dict(pipeline={PIPELINES[arm]!r}))'
    )
    return path


def build_jobs(args) -> list:
    """Train and test jobs of every arm, seed and schedule."""
    data_root = osp.abspath(args.data_root)
    schedules = [(args.epochs, '')]
    jobs = []
    for arm in args.arms:
        desc, config, model_opts, is_2d = ARMS[arm]
        passes = 1 if is_2d else args.num_frames
        if arm == 'das_gsf_searched':
            if not args.searched_policy:
                print('das_gsf_searched: SKIPPED, no --searched-policy given '
                      '(run the search first: configs/'
                      'das_search_resnet18_fashionmnist.py)')
                continue
            model_opts, passes = searched_policy_options(
                args.searched_policy)
        elif not is_2d:
            model_opts = model_opts + [
                f'model.backbone.num_frames={args.num_frames}',
                f'model.data_preprocessor.policy.num_frames={args.num_frames}'
            ]
        width = args.width
        model_opts = model_opts + [
            f'model.backbone.stem_channels={width}',
            f'model.backbone.base_channels={width}',
            f'model.head.in_channels={8 * width}'
        ]
        data_opts = [f'{split}_dataloader.{key}'
                     for split in ('train', 'val', 'test')
                     for key in (f'dataset.data_root={data_root}',
                                 f'num_workers={args.num_workers}',
                                 f'persistent_workers={args.num_workers > 0}')]
        if args.test_subset:
            data_opts += [f'{split}_dataloader.dataset.indices='
                          f'{args.test_subset}' for split in ('val', 'test')]
        config = arm_config(args.study_dir, arm, config)
        runs = schedules
        if args.equal_compute and is_2d and (
                args.equal_compute_arms is None
                or arm in args.equal_compute_arms):
            runs = schedules + [(args.epochs * args.num_frames,
                                 f'_x{args.num_frames}')]
        for epochs, suffix in runs:
            name = arm + suffix
            meta = dict(arm=name, description=desc, epochs=epochs,
                        passes=passes, is_2d=is_2d)
            for seed in args.seeds:
                train_key = f'train/{name}/seed{seed}'
                train_opts = model_opts + data_opts + [
                    f'randomness.seed={seed}',
                    *common.epoch_schedule_options(epochs),
                    f'train_dataloader.batch_size={args.batch_size}',
                    'default_hooks.checkpoint.max_keep_ckpts=1',
                ] + common.LOG_EVERY_ITER
                if args.train_subset:
                    train_opts.append('train_dataloader.dataset.indices='
                                      f'{args.train_subset}')
                jobs.append(
                    common.Job(train_key, 'train', config, train_opts,
                               meta=dict(meta, seed=seed)))
                jobs.append(
                    common.Job(
                        f'test/{name}/seed{seed}',
                        'test',
                        config,
                        model_opts + data_opts + [
                            f'test_dataloader.batch_size={args.test_batch}'
                        ] + common.LOG_EVERY_ITER,
                        checkpoint_of=train_key,
                        test_batch=args.test_batch,
                        meta=dict(meta, seed=seed)))
    return jobs


def report(args, argv, rows, machine) -> None:
    header = ['arm', 'what', 'epochs', 'top-1 (%)', 'seeds', 'train s/epoch',
              'train s total', 'test ms/image', 'frames/image']

    def cells(row):
        return [f'`{row["name"]}`', row['description'], row['epochs'],
                common.fmt(row['mean'], row['std']), row['n'],
                common.fmt(row['train_s_per_epoch'], digits=1),
                common.fmt(row['train_s'], digits=0),
                common.fmt(row['test_ms_per_image'], digits=3),
                row['passes']]

    equal_epochs = [r for r in rows if r['epochs'] == args.epochs]
    sections = [(f'Equal epochs ({args.epochs})', header,
                 [cells(r) for r in equal_epochs])]
    longer = [r for r in rows if r['epochs'] != args.epochs]
    if longer:
        sections.append((
            f'Equal training compute (2D arms for {args.num_frames} x '
            f'{args.epochs} epochs, DAS arms for {args.epochs})', header,
            [cells(r) for r in longer + [r for r in equal_epochs
                                         if not r['is_2d']]]))
    subset = (f'the first {args.train_subset} training images'
              if args.train_subset else 'all 60,000 training images')
    notes = [
        f'Setting: ResNet_CIFAR-18, width {args.width} '
        f'(stem/base channels), {subset}, batch {args.batch_size}, SGD lr '
        '0.05 with steps at 60 % and 80 % of the epochs, tested on '
        + (f'the first {args.test_subset}' if args.test_subset else
           'all 10,000') + ' test images. '
        'top-1 is mean ± sample std over the seeds. Times are means over '
        f'seeds, taken with {args.jobs} runs sharing the device '
        f'({args.device}); see bench/study_common.py for what they include.'
    ]
    common.write_report(args.md, 'Fashion-MNIST study: DAS vs augmentations',
                        argv, machine, sections, notes)
    common.plot_arms(
        args.png, rows, 'top-1 (%)', 'train_s', 'training time per run (s)',
        f'Fashion-MNIST, ResNet_CIFAR-18 width {args.width}')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.report_only:
        from mmdas.datasets.fashion_mnist import prepare_fashion_mnist
        prepare_fashion_mnist(args.data_root)
    common.finish_study(
        args, argv, __file__, build_jobs(args), 'accuracy/top1',
        dict(train_s_per_epoch='train_s_per_epoch', train_s='train_s_total'),
        lambda full_argv, rows, machine: report(args, full_argv, rows,
                                                machine))


if __name__ == '__main__':
    main()
