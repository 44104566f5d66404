"""Evidence study: DAS against test-time augmentation, on the embedded digits
segmentation set (issue 12, segmentation).

DeepLabV3+ with a ResNetV1c-18 (D8), trained from scratch, the same
iterations and seeds for every model (but ``2d_xT``, below). Three models
are trained per seed for the issue's arms:
``2d`` (``configs/plain_deeplabv3plus_r18_embedded.py``), ``das_mean`` and
``das_inverse_warp`` (``configs/das_deeplabv3plus_r18_embedded.py``, GSF,
T=4, ``rotate`` 8 degrees per step, with ``fusion='mean'`` or the default
``'inverse_warp'`` in both heads). Arms (one ``tools/test.py`` run each):

- ``2d``: the 2D model;
- ``2d_tta``: the 2D model with mmseg's test-time augmentation
  (``--tta``: flip x scales ``--tta-ratios``, 2 x 3 = 6 forward passes);
- ``2d_tta_eq``: ``--tta`` with scales only, as many as the DAS frames
  (``--tta-eq-ratios``: 4 passes). The embedded set has no flips in
  training (a mirrored digit is another digit), so this is the TTA a user
  would pick for it, at the inference cost of DAS;
- ``2d_dastest``: the 2D model with DAS frames at test time only
  (``tools/test.py --das-test-policy``: the DAS config's policy, no temporal
  module, inverse-warp fusion; 4 passes);
- ``das_mean``, ``das_inverse_warp``: the DAS models (4 passes);
- ``2d_xT``, ``2d_xT_tta_eq``: a fourth model, the 2D one trained for T x
  the iterations, tested plainly and with the ``2d_tta_eq`` TTA. A DAS step
  runs the network on T frames of each image, so this is the 2D model at
  equal training compute: what a user with a fixed budget would compare.

Reported: mIoU mean ± std over seeds, test-time cost per image, training
time per iteration and per run, the arms at equal inference cost (as many
forward passes per image as DAS frames) and at equal training compute. See
``bench/study_common.py`` for what is measured and how the study resumes.

Examples::

    PYTHONPATH=. python bench/study_segmentation.py --device cuda --jobs 6
    # CPU smoke size
    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/study_segmentation.py \\
        --device cpu --seeds 0 --iters 4 --num-train 8 --num-val 4 \\
        --study-dir /tmp/s
"""
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import study_common as common  # noqa: E402

REPO = common.REPO
PLAIN = osp.join(REPO, 'configs', 'plain_deeplabv3plus_r18_embedded.py')
DAS = osp.join(REPO, 'configs', 'das_deeplabv3plus_r18_embedded.py')
MEAN_FUSION = [
    'model.decode_head.fusion=mean', 'model.auxiliary_head.fusion=mean'
]
# trained model -> (config, extra --cfg-options)
MODELS = {
    '2d': (PLAIN, []),
    'das_mean': (DAS, MEAN_FUSION),
    'das_inverse_warp': (DAS, []),
    '2d_xT': (PLAIN, []),  # trained for T x the iterations
}
ARMS = {
    '2d': '2D model',
    '2d_tta': '2D + mmseg TTA (flip x scales)',
    '2d_tta_eq': '2D + mmseg TTA (scales only, T passes)',
    '2d_dastest': '2D + DAS frames at test time (inverse warp)',
    'das_mean': 'DAS GSF, fusion mean',
    'das_inverse_warp': 'DAS GSF, fusion inverse_warp',
    '2d_xT': '2D model, T x the iterations (equal training compute)',
    '2d_xT_tta_eq': '2D model, T x the iterations, + mmseg TTA (scales '
                    'only, T passes)',
}


def parse_args(argv=None):
    parser = common.study_parser(
        'segmentation',
        'Embedded-digits evidence study: DAS vs TTA', __doc__,
        ARMS)
    parser.add_argument(
        '--iters', type=int, default=1100,
        help='training iterations of every model (the configs\' 1100)')
    parser.add_argument('--tta-ratios', type=float, nargs='+',
                        default=[0.75, 1.0, 1.25])
    parser.add_argument('--tta-eq-ratios', type=float, nargs='+',
                        default=[0.75, 1.0, 1.25, 1.5])
    parser.add_argument(
        '--data-root', default=osp.join('data', 'embedded_digits_study'),
        help='embedded set, written here unless the same one exists')
    parser.add_argument('--num-train', type=int, default=4000)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--size', type=int, default=80,
                        help='canvas side (the configs\' crop is 80)')
    return parser.parse_args(argv)


def tta_config(study_dir: str, name: str, ratios, flip: bool) -> str:
    """A config of the 2D model whose ``tta_pipeline`` is these scales
    (and flips)."""
    flips = [[
        dict(type='RandomFlip', prob=0., direction='horizontal'),
        dict(type='RandomFlip', prob=1., direction='horizontal')
    ]] if flip else []
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(
            type='TestTimeAug',
            transforms=[[
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in ratios
            ], *flips, [dict(type='LoadAnnotations')],
                        [dict(type='PackSegInputs')]])
    ]
    path = osp.join(osp.abspath(study_dir), 'configs', f'{name}.py')
    common.write_config(path, PLAIN, f'tta_pipeline = {pipeline!r}')
    return path


def das_policy_file(study_dir: str) -> tuple:
    """The DAS config's policy as a JSON file for ``--das-test-policy``,
    and its T."""
    from mmengine.config import Config

    from mmdas.policy import DASPolicy
    policy = DASPolicy.from_dict(
        Config.fromfile(DAS).das_policy.to_dict(), field='das_policy')
    path = osp.join(osp.abspath(study_dir), 'configs', 'das_test_policy.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    policy.dump(path)
    return path, policy.num_frames


def train_iters(model: str, args, frames: int) -> int:
    """Training iterations of ``model``: ``--iters``, or T x as many for
    the 2D model at equal training compute."""
    return args.iters * (frames if model == '2d_xT' else 1)


def build_jobs(args) -> list:
    data_root = osp.abspath(args.data_root)
    data_opts = [
        f'{split}_dataloader.dataset.data_root={data_root}'
        for split in ('train', 'val', 'test')
    ]
    policy_path, frames = das_policy_file(args.study_dir)

    def train_opts(iters: int) -> list:
        return (data_opts + common.iter_schedule_options(iters) +
                common.LOG_EVERY_ITER)

    tta_eq = tta_config(args.study_dir, 'tta_scales', args.tta_eq_ratios,
                        False)
    test_opts = data_opts + common.LOG_EVERY_ITER
    tests = {  # arm -> (model, config, extra args, extra options, passes)
        '2d': ('2d', PLAIN, [], [], 1),
        '2d_tta': ('2d',
                   tta_config(args.study_dir, 'tta_flip_scales',
                              args.tta_ratios, True), ['--tta'], [],
                   2 * len(args.tta_ratios)),
        '2d_tta_eq': ('2d', tta_eq, ['--tta'], [], len(args.tta_eq_ratios)),
        '2d_dastest': ('2d', PLAIN, ['--das-test-policy', policy_path], [],
                       frames),
        'das_mean': ('das_mean', DAS, [], MEAN_FUSION, frames),
        'das_inverse_warp': ('das_inverse_warp', DAS, [], [], frames),
        '2d_xT': ('2d_xT', PLAIN, [], [], 1),
        '2d_xT_tta_eq': ('2d_xT', tta_eq, ['--tta'], [],
                         len(args.tta_eq_ratios)),
    }
    models = sorted({tests[arm][0] for arm in args.arms},
                    key=list(MODELS).index)
    jobs = []
    for seed in args.seeds:
        for model in models:
            config, opts = MODELS[model]
            iters = train_iters(model, args, frames)
            jobs.append(
                common.Job(
                    f'train/{model}/seed{seed}',
                    'train',
                    config,
                    opts + train_opts(iters) + [f'randomness.seed={seed}'],
                    meta=dict(model=model, seed=seed, iters=iters)))
        for arm in args.arms:
            model, config, tool_args, opts, passes = tests[arm]
            jobs.append(
                common.Job(
                    f'test/{arm}/seed{seed}',
                    'test',
                    config,
                    opts + test_opts,
                    args=tool_args,
                    checkpoint_of=f'train/{model}/seed{seed}',
                    meta=dict(arm=arm, description=ARMS[arm], model=model,
                              passes=passes, seed=seed)))
    return jobs, frames


def report(args, argv, rows, machine, frames) -> None:
    header = ['arm', 'what', 'trained model', 'passes/image', 'mIoU (%)',
              'seeds', 'test ms/image', 'train iters', 'train s/iter',
              'train s/run']

    def cells(row):
        iters = train_iters(row['model'], args, frames)
        per_iter = row['train_s_per_iter']
        return [f'`{row["name"]}`', row['description'], f'`{row["model"]}`',
                row['passes'], common.fmt(row['mean'], row['std']), row['n'],
                common.fmt(row['test_ms_per_image'], digits=2), iters,
                common.fmt(per_iter, digits=3),
                common.fmt(per_iter * iters, digits=0)]

    sections = [('All arms', header, [cells(r) for r in rows]),
                (f'At equal inference cost ({frames} forward passes per '
                 'image)', header,
                 [cells(r) for r in rows if r['passes'] == frames]),
                (f'At equal training compute (the 2D model for {frames} x '
                 'the iterations)', header,
                 [cells(r) for r in rows
                  if r['model'] in ('2d_xT', 'das_mean', 'das_inverse_warp')])]
    notes = [
        f'Setting: DeepLabV3+ ResNetV1c-18 D8 from scratch, {args.iters} '
        f'iterations ({args.iters * frames} for `2d_xT`), embedded digits '
        f'({args.num_train} train / '
        f'{args.num_val} test images of {args.size} px), T = {frames}. '
        'mIoU is mean ± sample std over the seeds. Times are means over '
        f'seeds, taken with {args.jobs} runs sharing the device '
        f'({args.device}); see bench/study_common.py for what they include. '
        'Every model is trained with batch 8 images (the configs\' '
        f'setting); a DAS step runs the network on 8 x {frames} frames.'
    ]
    common.write_report(args.md, 'Embedded-digits study: DAS vs TTA', argv,
                        machine, sections, notes)
    common.plot_arms(args.png, rows, 'mIoU (%)', 'test_ms_per_image',
                     'test time per image (ms)',
                     'Embedded digits, DeepLabV3+ R-18')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.report_only:
        from mmdas.datasets.embedded import (DEMO_SEG_LAYOUT,
                                             ensure_embedded_dataset)
        ensure_embedded_dataset(args.data_root, task='seg',
                                num_train=args.num_train,
                                num_val=args.num_val, canvas=args.size,
                                **DEMO_SEG_LAYOUT)
    jobs, frames = build_jobs(args)
    common.finish_study(
        args, argv, __file__, jobs, 'mIoU',
        dict(train_s_per_iter='train_s_per_iter'),
        lambda full_argv, rows, machine: report(args, full_argv, rows,
                                                machine, frames))


if __name__ == '__main__':
    main()
