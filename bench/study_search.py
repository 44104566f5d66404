"""Does the search pay? The searched policy against every fixed op, a random
op and the 2D baseline, with the search rerun per seed (issue 22).

On the Fashion-MNIST setting of ``bench/study_classification.py`` (one
``ResNet_CIFAR``-18 of width ``--width``, the same data subset, schedule and
test images for every arm), for every seed:

- ``op:<op>``, the brute-force oracle: DAS + GSF
  (``configs/das_resnet18_fashionmnist.py``) with each candidate op of the
  search space alone (``configs/_base_/das_search.py``), at the magnitude
  the search space gives it (``DEFAULT_MAGNITUDES`` of
  ``mmdas/models/das_cell.py`` unless the cell sets its own);
- ``random``: one of those ops drawn from the seed,
  ``random.Random(seed).choice(ops)``;
- ``searched@<budget>`` and ``argmax@<budget>``: the search
  (``configs/das_search_resnet18_fashionmnist.py`` on the same network and
  data) rerun with the seed, then its ``policy.json`` (perturbation
  selection) and ``policy_argmax.json`` (argmax α);
- ``plain``: the 2D baseline, crop + flip
  (``configs/plain_resnet18_fashionmnist.py``).

Reuse: the random, searched and argmax policies are each one of the 5 ops at
the search space's magnitude, trained with the same seed and config as that
op's oracle arm, so their top-1 *is* the oracle run's: the study checks that
the policy file equals the oracle's policy exactly (op, magnitude, T,
profile; a single edge) and, only if it does not (a learnable magnitude, a
multi-node cell), trains and tests that policy on its own. A study run thus
costs 5 oracle runs + 1 search + 1 2D run per seed and budget-free arm, and
one more search per seed for each further ``--budget``.

A budget is the search's α learning rate, search epochs and selection
``eval_batches``: ``--budget base`` (the config's: Adam lr 3e-4, the
training epochs, ``eval_batches='auto'``) and any ``lr=3e-3,epochs=8,eval=all``
(``eval``: an int, ``all`` or ``auto``). The oracle does not depend on it,
so more budgets add only searches.

Every run is ``tools/train.py`` then ``tools/test.py`` in a subprocess; the
study resumes (``bench/study_common.py``). Outputs:
``<study-dir>/results.json`` (every run, the per-arm summary, the per-seed
selection records), a Markdown report (``--md``) and a plot (``--png``).

Examples::

    # the CPU study of docs/benchmarks.md (2 cores)
    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/study_search.py \\
        --device cpu --jobs 2
    # add a search budget (only the searches run)
    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/study_search.py \\
        --device cpu --jobs 2 --budget base lr=3e-3,eval=all
    # smoke size
    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/study_search.py \\
        --device cpu --seeds 0 --epochs 1 --train-subset 64 \\
        --test-subset 64 --width 8 --num-frames 2 --study-dir /tmp/s
"""
import json
import math
import os
import os.path as osp
import random
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import study_common as common  # noqa: E402

REPO = common.REPO
_CFG = osp.join(REPO, 'configs')
# task -> its configs, metric and schedule unit
TASKS = dict(
    cls=dict(
        plain=osp.join(_CFG, 'plain_resnet18_fashionmnist.py'),
        das=osp.join(_CFG, 'das_resnet18_fashionmnist.py'),
        search=osp.join(_CFG, 'das_search_resnet18_fashionmnist.py'),
        metric='accuracy/top1', label='top-1 (%)', unit='epochs',
        plain_what='2D: crop + flip (baseline)'),
    seg=dict(
        plain=osp.join(_CFG, 'plain_deeplabv3plus_r18_embedded.py'),
        das=osp.join(_CFG, 'das_deeplabv3plus_r18_embedded.py'),
        search=osp.join(_CFG, 'das_search_deeplabv3plus_r18_embedded.py'),
        metric='mIoU', label='mIoU (%)', unit='iterations',
        plain_what='2D: the demo\'s 2D model (baseline)'))
SELECTION_FILE = 'das_selection.json'


def search_space(search_config: str) -> tuple:
    """The search config's ops, their policy magnitudes (as the search
    writes them: the shortest decimal of the float32) and whether they are
    learnable."""
    import numpy as np
    from mmengine.config import Config

    from mmdas.models.das_cell import DEFAULT_MAGNITUDES
    cell = Config.fromfile(search_config).model.data_preprocessor.cell
    ops = list(cell.ops)
    given = cell.get('magnitudes') or {}
    mags = {
        op: float(str(np.float32(given.get(op, DEFAULT_MAGNITUDES[op]))))
        for op in ops
    }
    return ops, mags, bool(cell.get('learnable_magnitudes', False))


def parse_budget(text: str) -> dict:
    """``base`` or ``lr=X,epochs=N,eval=B`` -> dict(name, lr, epochs, eval);
    None means the config's value. ``iters=N`` is the same as
    ``epochs=N``: the search's length in the task's unit."""
    budget = dict(name=text, lr=None, epochs=None, eval=None)
    if text == 'base':
        return budget
    for item in text.split(','):
        key, sep, value = item.partition('=')
        if not sep or key not in ('lr', 'epochs', 'iters', 'eval'):
            raise SystemExit(
                f'--budget {text!r}: expected base or items lr=X, '
                'epochs=N, eval=B (B an int, all or auto), comma-separated.')
        if key == 'lr':
            budget['lr'] = float(value)
        elif key in ('epochs', 'iters'):
            budget['epochs'] = int(value)
        elif value not in ('all', 'auto'):
            budget['eval'] = int(value)
        else:
            budget['eval'] = value
    return budget


def parse_args(argv=None):
    parser = common.argparse.ArgumentParser(
        description='Does the DAS search pay? searched vs every fixed op, '
        'random op, 2D',
        formatter_class=common.argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    common.add_common_args(parser, 'search')
    parser.add_argument(
        '--task', choices=sorted(TASKS), default='cls',
        help='cls: Fashion-MNIST (the default); seg: the demo\'s embedded '
        'digits segmentation')
    parser.add_argument('--epochs', type=int, default=4,
                        help='cls: training epochs of every run')
    parser.add_argument(
        '--iters', type=int, default=1100,
        help='seg: training iterations of every run (the demo\'s 1100)')
    parser.add_argument('--num-train', type=int, default=4000,
                        help='seg: training canvases (the demo\'s)')
    parser.add_argument('--num-val', type=int, default=100,
                        help='seg: test canvases (the demo\'s)')
    parser.add_argument('--size', type=int, default=80,
                        help='seg: canvas side (the demo\'s)')
    parser.add_argument('--width', type=int, default=16)
    parser.add_argument('--num-frames', type=int, default=4)
    parser.add_argument('--train-subset', type=int, default=4000)
    parser.add_argument('--test-subset', type=int, default=5000)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--test-batch', type=int, default=256)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument(
        '--budget', nargs='+', default=['base'],
        help='search budgets: base (the config) and/or '
        'lr=X,epochs=N,eval=B items (default: base)')
    parser.add_argument('--no-plain', action='store_true',
                        help='leave out the 2D baseline')
    parser.add_argument(
        '--data-root',
        help='default: data/fashion_mnist (cls), data/embedded_digits_study '
        '(seg, written unless the same set is there)')
    args = parser.parse_args(argv)
    args.budgets = [parse_budget(b) for b in args.budget]
    args.cfg = TASKS[args.task]
    args.metric = args.cfg['metric']
    args.length = args.epochs if args.task == 'cls' else args.iters
    if args.data_root is None:
        args.data_root = osp.join('data', 'fashion_mnist' if args.task ==
                                  'cls' else 'embedded_digits_study')
    if args.task == 'seg' and '--test-batch' not in ' '.join(argv or []):
        args.test_batch = 1  # the segmentation configs' test batch
    return args


# ---- jobs -------------------------------------------------------------------
def _shared_options(args) -> tuple:
    """Model options (width) and data options of every run."""
    if args.task == 'seg':
        return [], [f'{split}_dataloader.dataset.data_root='
                    f'{osp.abspath(args.data_root)}'
                    for split in ('train', 'val', 'test')]
    width = args.width
    model = [
        f'model.backbone.stem_channels={width}',
        f'model.backbone.base_channels={width}',
        f'model.head.in_channels={8 * width}'
    ]
    data_root = osp.abspath(args.data_root)
    data = [f'{split}_dataloader.{key}'
            for split in ('train', 'val', 'test')
            for key in (f'dataset.data_root={data_root}',
                        f'num_workers={args.num_workers}',
                        f'persistent_workers={args.num_workers > 0}')]
    data += [f'{split}_dataloader.dataset.indices={args.test_subset}'
             for split in ('val', 'test')]
    return model, data


def _train_options(args, seed: int, epochs: int) -> list:
    """Seed and schedule; ``epochs`` is iterations for ``seg``."""
    if args.task == 'seg':
        return ([f'randomness.seed={seed}'] +
                common.iter_schedule_options(epochs) + common.LOG_EVERY_ITER)
    return [
        f'randomness.seed={seed}',
        *common.epoch_schedule_options(epochs),
        f'train_dataloader.batch_size={args.batch_size}',
        f'train_dataloader.dataset.indices={args.train_subset}',
        'default_hooks.checkpoint.max_keep_ckpts=1',
    ] + common.LOG_EVERY_ITER


def policy_path(study_dir: str, op: str) -> str:
    return osp.join(osp.abspath(study_dir), 'policies', f'{op}.json')


def write_oracle_policies(args, ops, mags) -> dict:
    """op -> the oracle's policy file (written once, the same each run)."""
    from mmdas.policy import DASPolicy
    paths = {}
    for op in ops:
        transforms = [dict(op=op)] if op == 'identity' else [
            dict(op=op, magnitude=mags[op])
        ]
        data = DASPolicy(transforms, num_frames=args.num_frames,
                         profile='symmetric').to_dict()
        path = policy_path(args.study_dir, op)
        os.makedirs(osp.dirname(path), exist_ok=True)
        text = json.dumps(data, indent=2) + '\n'
        if not osp.exists(path) or open(path).read() != text:
            with open(path, 'w') as f:
                f.write(text)
        paths[op] = path
    return paths


def _train_test(key: str, config: str, model_opts: list, data_opts: list,
                train_opts: list, args, meta: dict) -> list:
    train_key = f'train/{key}'
    return [
        common.Job(train_key, 'train', config,
                   model_opts + data_opts + train_opts, meta=meta),
        common.Job(f'test/{key}', 'test', config,
                   model_opts + data_opts +
                   [f'test_dataloader.batch_size={args.test_batch}'] +
                   common.LOG_EVERY_ITER,
                   checkpoint_of=train_key, test_batch=args.test_batch,
                   meta=meta)
    ]


def das_model_options(args, policy: str) -> list:
    return [f'model.data_preprocessor.policy={policy}',
            f'model.backbone.num_frames={args.num_frames}']


def search_job(args, budget: dict, seed: int) -> common.Job:
    """The search of ``budget`` with ``seed`` (only a training run: its
    selection writes the policy files)."""
    model, data = _shared_options(args)
    epochs = budget['epochs'] or args.length
    opts = model + [
        f'model.backbone.num_frames={args.num_frames}',
        f'model.data_preprocessor.cell.num_frames={args.num_frames}'
    ] + data + _train_options(args, seed, epochs)
    # the supernet is not validated: the selection decides on the α part,
    # and the test images are for the trained policies only
    opts = [o for o in opts if not o.startswith('train_cfg.val_interval')]
    opts.append(f'train_cfg.val_interval={epochs + 1}')
    if budget['lr'] is not None:
        opts.append(f'das_search.arch_optimizer.lr={budget["lr"]}')
    if budget['eval'] is not None:
        value = dict(all='None', auto="'auto'").get(budget['eval'],
                                                   budget['eval'])
        opts.append(f'das_search.selection.eval_batches={value}')
    return common.Job(f'search/{budget["name"]}/seed{seed}', 'train',
                      args.cfg['search'], opts,
                      meta=dict(arm=f'search@{budget["name"]}', seed=seed,
                                epochs=epochs))


def random_op(ops, seed: int) -> str:
    """The random arm's op: drawn from the seed with its own generator."""
    return random.Random(seed).choice(list(ops))


def build_jobs(args, ops, mags) -> list:
    """The first budget's searches first (the longest runs), then the
    oracle, then 2D, then the other budgets' searches."""
    paths = write_oracle_policies(args, ops, mags)
    model, data = _shared_options(args)
    jobs = [search_job(args, args.budgets[0], s) for s in args.seeds]
    for seed in args.seeds:
        train = _train_options(args, seed, args.length)
        for op in ops:
            meta = dict(arm=f'op:{op}', seed=seed, op=op,
                        magnitude=mags[op], passes=args.num_frames)
            jobs += _train_test(f'op_{op}/seed{seed}', args.cfg['das'],
                                model + das_model_options(args, paths[op]),
                                data, train, args, meta)
    if not args.no_plain:
        for seed in args.seeds:
            train = _train_options(args, seed, args.length)
            jobs += _train_test(f'plain/seed{seed}', args.cfg['plain'],
                                model, data,
                                train, args,
                                dict(arm='plain', seed=seed, passes=1))
    jobs += [search_job(args, b, s) for b in args.budgets[1:]
             for s in args.seeds]
    return jobs


def _load_json(path: str):
    with open(path) as f:
        return json.load(f)


def searched_policies(args, paths: dict, budget: dict, seed: int) -> dict:
    """kind ('searched', 'argmax') -> dict(op, oracle (bool), path) of a
    finished search, or None if it has not finished."""
    from mmdas.policy import DASPolicy
    key = f'search/{budget["name"]}/seed{seed}'
    if common.load_result(args.study_dir, key) is None:
        return None
    work = common.work_dir_of(args.study_dir, key)
    found = {}
    for kind, name in (('searched', 'policy.json'),
                       ('argmax', 'policy_argmax.json')):
        path = osp.join(work, name)
        data = _load_json(path)
        if 'transforms' not in data or len(data['transforms']) != 1:
            found[kind] = dict(op=None, oracle=False, path=path)
            continue
        policy = DASPolicy.load(path).to_dict()
        op = policy['transforms'][0]['op']
        same = (op in paths
                and DASPolicy.load(paths[op]).to_dict() == policy)
        found[kind] = dict(op=op, oracle=same, path=path)
    return found


def extra_jobs(args, budget: dict, seed: int, found: dict) -> list:
    """Train and test a searched policy that is not an oracle arm's."""
    model, data = _shared_options(args)
    jobs = []
    for kind, info in found.items():
        if info['oracle']:
            continue
        name = f'{kind}@{budget["name"]}'
        print(f'  {name} seed {seed}: {info["path"]} is not one of the '
              'oracle policies; it is trained on its own', flush=True)
        opts = [f'model.data_preprocessor.policy={info["path"]}']
        policy = _load_json(info['path'])
        frames = policy.get('num_frames', args.num_frames)
        opts.append(f'model.backbone.num_frames={frames}')
        jobs += _train_test(f'{kind}_{budget["name"]}/seed{seed}',
                            args.cfg['das'], model + opts, data,
                            _train_options(args, seed, args.length), args,
                            dict(arm=name, seed=seed, passes=frames))
    return jobs


def all_jobs(args, ops, mags) -> list:
    """The jobs of :func:`build_jobs` plus the extra runs of the finished
    searches whose policies are no oracle arm's."""
    jobs = build_jobs(args, ops, mags)
    paths = {op: policy_path(args.study_dir, op) for op in ops}
    for budget in args.budgets:
        for seed in args.seeds:
            found = searched_policies(args, paths, budget, seed)
            if found:
                jobs += extra_jobs(args, budget, seed, found)
    return jobs


# ---- summary ----------------------------------------------------------------
def softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def seed_records(args, ops, results: dict) -> list:
    """One record per (budget, seed) with a finished search: the selection,
    α, the arms' ops and the ranks."""
    records = []
    paths = {op: policy_path(args.study_dir, op) for op in ops}
    for budget in args.budgets:
        for seed in args.seeds:
            found = searched_policies(args, paths, budget, seed)
            if found is None:
                continue
            key = f'search/{budget["name"]}/seed{seed}'
            work = common.work_dir_of(args.study_dir, key)
            sel = _load_json(osp.join(work, SELECTION_FILE))
            step = sel['perturbation']['steps'][0]
            oracle = {
                op: results[f'test/op_{op}/seed{seed}']['metrics'][
                    args.metric]
                for op in ops if f'test/op_{op}/seed{seed}' in results
            }
            order = sorted(oracle, key=lambda op: -oracle[op])

            def rank(op):
                # 1 = the seed's best fixed op; ties share the better rank;
                # none until every op's run has finished
                if op not in oracle or len(oracle) < len(ops):
                    return None
                return 1 + sum(v > oracle[op] for v in oracle.values())

            search = results[key]
            records.append(dict(
                budget=budget['name'], seed=seed,
                searched=found['searched']['op'],
                searched_is_oracle_run=found['searched']['oracle'],
                argmax=found['argmax']['op'],
                argmax_is_oracle_run=found['argmax']['oracle'],
                random=random_op(ops, seed),
                rank_searched=rank(found['searched']['op']),
                rank_argmax=rank(found['argmax']['op']),
                rank_random=rank(random_op(ops, seed)),
                best_op=order[0] if len(order) == len(ops) else None,
                oracle_top1=oracle,
                softmax_alpha=dict(zip(
                    sel['ops'], softmax(sel['alphas'][0]))),
                base_metric=step['base_metric'],
                drops={op: m['drop'] for op, m in step['masked'].items()},
                eval_batches=sel['eval_batches'],
                selection_s=sel['seconds'],
                search_iters=search['train_iters'],
                search_wall_s=search['wall_s'],
                search_train_s=search['train_s_total']))
    return records


def _top1(results, key, metric):
    result = results.get(key)
    return None if result is None else result['metrics'][metric]


def arm_rows(args, ops, results: dict, records: list) -> list:
    """One row per arm: top-1 per seed, mean ± std, the ops per seed, the
    train/test runs the numbers come from."""
    rows = []

    def add(name, description, per_seed):
        # per_seed: seed -> (op or None, test key)
        values, seeds, used, keys = [], [], [], []
        for seed, (op, key) in sorted(per_seed.items()):
            value = _top1(results, key, args.metric)
            if value is None:
                continue
            values.append(value)
            seeds.append(seed)
            used.append(op)
            keys.append(key)
        if not values:
            return
        mean, std = common.mean_std(values)
        trains = [results[results[k]['train_key']] for k in keys
                  if results[k]['train_key'] in results]
        rows.append(dict(
            name=name, description=description, mean=mean, std=std,
            n=len(values), seeds=seeds, values=values, ops=used,
            test_keys=keys,
            train_s=common.mean_std([t['train_s_total'] for t in trains])[0],
            train_wall_s=common.mean_std([t['wall_s'] for t in trains])[0],
            test_ms_per_image=common.mean_std(
                [results[k]['test_ms_per_image'] for k in keys])[0]))

    for op in ops:
        add(f'op:{op}', f'DAS + GSF, {op} alone (oracle arm)',
            {s: (op, f'test/op_{op}/seed{s}') for s in args.seeds})
    add('random', 'DAS + GSF, an op drawn from the seed',
        {s: (random_op(ops, s), f'test/op_{random_op(ops, s)}/seed{s}')
         for s in args.seeds})
    # the oracle picked with hindsight, on the test set: the best per seed
    best = {}
    for seed in args.seeds:
        scored = [(v, op) for op in ops
                  for v in [_top1(results, f'test/op_{op}/seed{seed}',
                                  args.metric)]
                  if v is not None]
        if len(scored) == len(ops):
            op = max(scored)[1]
            best[seed] = (op, f'test/op_{op}/seed{seed}')
    add('oracle_best', 'the best of the 5 ops per seed, picked on the test '
        'set (hindsight)', best)
    for budget in args.budgets:
        for kind in ('searched', 'argmax'):
            per_seed = {}
            for rec in records:
                if rec['budget'] != budget['name']:
                    continue
                op = rec[kind]
                key = (f'test/op_{op}/seed{rec["seed"]}'
                       if rec[f'{kind}_is_oracle_run'] else
                       f'test/{kind}_{budget["name"]}/seed{rec["seed"]}')
                per_seed[rec['seed']] = (op, key)
            what = ('perturbation selection (policy.json)'
                    if kind == 'searched' else
                    'argmax α (policy_argmax.json)')
            add(f'{kind}@{budget["name"]}',
                f'DAS + GSF, the search\'s {what}', per_seed)
    add('plain', args.cfg['plain_what'],
        {s: (None, f'test/plain/seed{s}') for s in args.seeds})
    return rows


def drop_spread(records: list, ops) -> list:
    """Per budget and op: the drop's mean ± std over the seeds, and
    softmax(α)'s."""
    out = []
    for budget in dict.fromkeys(r['budget'] for r in records):
        recs = [r for r in records if r['budget'] == budget]
        for op in ops:
            drops = [r['drops'][op] for r in recs if op in r['drops']]
            alphas = [r['softmax_alpha'][op] for r in recs]
            out.append(dict(budget=budget, op=op, n=len(drops),
                            drop=common.mean_std(drops),
                            alpha=common.mean_std(alphas)))
    return out


def separation(records: list, ops) -> list:
    """Per budget: does the search separate the ops? How often it picks
    the same op, its mean rank, how far softmax(α) is from uniform, and the
    drops' spread between ops against their spread across seeds."""
    out = []
    spread = drop_spread(records, ops)
    for budget in dict.fromkeys(r['budget'] for r in records):
        recs = [r for r in records if r['budget'] == budget]
        picks = [r['searched'] for r in recs]
        top = max(set(picks), key=picks.count)
        means = [s['drop'][0] for s in spread if s['budget'] == budget]
        stds = [s['drop'][1] for s in spread if s['budget'] == budget]
        ranks = [r['rank_searched'] for r in recs
                 if r['rank_searched'] is not None]
        argmax_ranks = [r['rank_argmax'] for r in recs
                        if r['rank_argmax'] is not None]
        random_ranks = [r['rank_random'] for r in recs
                        if r['rank_random'] is not None]
        out.append(dict(
            budget=budget, n=len(recs), picks=picks,
            same=f'{picks.count(top)} of {len(picks)} ({top})',
            mean_rank=common.mean_std(ranks)[0] if ranks else None,
            mean_rank_argmax=(common.mean_std(argmax_ranks)[0]
                              if argmax_ranks else None),
            mean_rank_random=(common.mean_std(random_ranks)[0]
                              if random_ranks else None),
            alpha_max=max(max(r['softmax_alpha'].values()) for r in recs),
            alpha_min=min(min(r['softmax_alpha'].values()) for r in recs),
            drop_between=max(means) - min(means),
            drop_seed_std=common.mean_std(stds)[0]))
    return out


# ---- report -----------------------------------------------------------------
def _f(value, digits=2):
    return 'n/a' if value is None else f'{value:.{digits}f}'


def _arm_top1(by_name, name):
    row = by_name.get(name)
    return 'n/a' if row is None else common.fmt(row['mean'], row['std'])


def setting(args) -> str:
    """One sentence: the size every figure of the report comes from."""
    if args.task == 'seg':
        return (f'Setting: the demo\'s DeepLabV3+ (half-width '
                f'ResNetV1c-18-D8, from scratch) on the embedded digits '
                f'({args.num_train} training and {args.num_val} test '
                f'canvases of {args.size} px), {args.iters} iterations of '
                f'the demo recipe, T = {args.num_frames}; seeds '
                f'{args.seeds}.')
    return (f'Setting: ResNet_CIFAR-18 width {args.width}, the first '
            f'{args.train_subset} training images, {args.epochs} epochs, '
            f'batch {args.batch_size}, T = {args.num_frames}, the first '
            f'{args.test_subset} test images; seeds {args.seeds}.')


def report(args, argv, machine, ops, rows, records) -> None:
    by_name = {r['name']: r for r in rows}
    label = args.cfg['label']
    arms = [[f'`{r["name"]}`', r['description'],
             common.fmt(r['mean'], r['std']), r['n'],
             ', '.join(f'{o}' for o in r['ops']) if any(r['ops']) else '–',
             ', '.join(f'{v:.2f}' for v in r['values']),
             common.fmt(r['train_s'], digits=0),
             common.fmt(r['test_ms_per_image'], digits=3)] for r in rows]
    sections = [('Top-1 per arm', [
        'arm', 'what', label, 'seeds', 'op per seed',
        f'{label} per seed', 'train s', 'test ms/image'
    ], arms)]
    per_seed = []
    for rec in records:
        per_seed.append([
            rec['budget'], rec['seed'], f'`{rec["searched"]}`',
            rec['rank_searched'], f'`{rec["argmax"]}`', rec['rank_argmax'],
            f'`{rec["random"]}`', rec['rank_random'], f'`{rec["best_op"]}`',
            ', '.join(f'{op} {d:+.2f}'
                      for op, d in rec['drops'].items()),
            ', '.join(f'{rec["softmax_alpha"][op]:.3f}' for op in ops),
            rec['eval_batches']])
    if per_seed:
        sections.append((
            'Per seed: what the search picked, and its rank among the 5 '
            'fixed ops (1 = best on that seed)',
            ['budget', 'seed', 'searched', 'rank', 'argmax α', 'rank',
             'random', 'rank', 'best fixed op', 'drops when masked '
             '(points of the α part\'s metric)',
             'softmax(α) ' + '/'.join(ops), 'eval batches'], per_seed))
        spread = [[s['budget'], f'`{s["op"]}`',
                   common.fmt(*s['drop']), common.fmt(*s['alpha'], digits=3),
                   _arm_top1(by_name, f'op:{s["op"]}')]
                  for s in drop_spread(records, ops)]
        sections.append((
            'The selection\'s drops and softmax(α) across seeds, beside the '
            'op\'s own top-1', ['budget', 'op', 'drop (points), mean ± std',
                                'softmax(α), mean ± std',
                                f'{label} of the op alone'], spread))
        sections.append((
            'Does the search separate the ops?',
            ['budget', 'searched op per seed', 'same op', 'mean rank '
             'searched', 'mean rank argmax', 'mean rank random',
             'softmax(α) range over ops and seeds',
             'drops: max − min of the ops\' means (points)',
             'drops: mean std across seeds (points)'],
            [[s['budget'], ', '.join(f'`{p}`' for p in s['picks']),
              s['same'], _f(s['mean_rank']), _f(s['mean_rank_argmax']),
              _f(s['mean_rank_random']),
              f'{s["alpha_min"]:.3f}–{s["alpha_max"]:.3f}',
              _f(s['drop_between']), _f(s['drop_seed_std'])]
             for s in separation(records, ops)]))
        cost = []
        oracle_train = [by_name[f'op:{op}']['train_wall_s'] for op in ops
                        if f'op:{op}' in by_name]
        for budget in dict.fromkeys(r['budget'] for r in records):
            recs = [r for r in records if r['budget'] == budget]
            wall = common.mean_std([r['search_wall_s'] for r in recs])
            sel = common.mean_std([r['selection_s'] for r in recs])
            iters = recs[0]['search_iters']
            cost.append([
                budget, iters, common.fmt(*wall, digits=0),
                common.fmt(*sel, digits=0),
                common.fmt(sum(oracle_train), digits=0)
                if len(oracle_train) == len(ops) else 'n/a',
                _f(wall[0] / sum(oracle_train))
                if len(oracle_train) == len(ops) else 'n/a'])
        sections.append((
            'Cost: one search against the oracle\'s 5 trainings (mean per '
            'seed)', ['budget', 'search iterations (α step + weight step)',
                      'search wall s', 'of which selection s',
                      'oracle: 5 trainings, wall s', 'search / oracle (wall)'],
            cost))
    notes = [
        setting(args) + ' The searched, argmax and random arms reuse the '
        'oracle run of their op (same op, magnitude, T, seed and config, '
        'checked); '
        '`oracle_best` is chosen on the test set and so is optimistic. '
        'Drops are the selection\'s: the α part\'s '
        + ('accuracy' if args.task == 'cls' else 'pixel accuracy') +
        ' with nothing masked minus with the op masked, in points. Times '
        f'were taken with {args.jobs} runs sharing the device '
        f'({args.device}); compare '
        'within this report.'
    ]
    common.write_report(args.md, 'Does the search pay? (' + (
        'Fashion-MNIST' if args.task == 'cls' else 'embedded digits') + ')',
                        argv, machine, sections, notes)
    common.plot_arms(args.png, rows, label, 'train_s',
                     'training time per run (s)',
                     'Search vs fixed ops, ' + (
                         f'ResNet_CIFAR-18 width {args.width}'
                         if args.task == 'cls' else 'DeepLabV3+ R-18'))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.report_only and args.task == 'cls':
        from mmdas.datasets.fashion_mnist import prepare_fashion_mnist
        prepare_fashion_mnist(args.data_root)
    elif not args.report_only:
        from mmdas.datasets.embedded import (DEMO_SEG_LAYOUT,
                                             ensure_embedded_dataset)
        ensure_embedded_dataset(args.data_root, task='seg',
                                num_train=args.num_train,
                                num_val=args.num_val, canvas=args.size,
                                **DEMO_SEG_LAYOUT)
    if args.device == 'cuda' and not (args.report_only or args.dry_run):
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--device cuda: no GPU is visible to torch; use '
                             '--device cpu.')
    ops, mags, learnable = search_space(args.cfg['search'])
    if learnable:
        print('the search space has learnable magnitudes: every searched '
              'policy is trained on its own', flush=True)
    if args.report_only:
        jobs = all_jobs(args, ops, mags)
        results = common.finished_results(jobs, args.study_dir, args.device)
    else:
        jobs = build_jobs(args, ops, mags)
        results = common.run_jobs(jobs, args.study_dir, args.jobs,
                                  args.device, args.threads, args.dry_run)
        if args.dry_run:
            return
        # the searches have finished: a policy that is no oracle arm's is
        # trained on its own (nothing runs when every one is)
        planned = len(jobs)
        jobs = all_jobs(args, ops, mags)
        if len(jobs) > planned:
            results = common.run_jobs(jobs, args.study_dir, args.jobs,
                                      args.device, args.threads)
    records = seed_records(args, ops, results)
    rows = arm_rows(args, ops, results, records)
    machine = common.machine_info(args.device)
    full_argv = [osp.relpath(osp.abspath(__file__), REPO)] + list(argv)
    path = common.write_results(args.study_dir, full_argv, machine, results,
                                rows)
    data = _load_json(path)
    data.update(seeds=records, drop_spread=drop_spread(records, ops),
                separation=separation(records, ops),
                ops=ops, magnitudes=mags)
    common._write_json(path, data)
    if not rows:
        print('no finished test run yet: no report written')
        return
    report(args, full_argv, machine, ops, rows, records)
    print(f'results: {path}; report: {args.md}; plot: {args.png}')
    for row in rows:
        print(f'  {row["name"]:<18} {args.metric} '
              f'{common.fmt(row["mean"], row["std"])}'
              f' ({row["n"]} seeds; ops {row["ops"]})')
    for rec in records:
        print(f'  search {rec["budget"]} seed {rec["seed"]}: searched '
              f'{rec["searched"]} (rank {rec["rank_searched"]}), argmax '
              f'{rec["argmax"]} (rank {rec["rank_argmax"]}), softmax(α) '
              + ' '.join(f'{v:.3f}' for v in rec['softmax_alpha'].values()))


if __name__ == '__main__':
    main()
