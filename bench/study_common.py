"""Runner shared by the evidence studies (``bench/study_*.py``).

A study is a list of :class:`Job` s. A job is one run of ``tools/train.py`` or
``tools/test.py`` in a subprocess, exactly as a user runs them (config plus
``--cfg-options``), with its own work dir ``<study-dir>/runs/<key>``. When a
job ends, its numbers are read from the logs mmengine wrote and stored in
``<work dir>/result.json``; that file marks the job finished, so running the
study again (after an interruption, or with more seeds) redoes nothing that
finished. An unfinished job's work dir is wiped and the job rerun whole. A
finished run made with other settings (options, device) is an error, not
silently reused.

``--jobs N`` keeps N subprocesses running at once (on one GPU, or on the
CPU cores); a test job waits for the training job whose checkpoint it reads.

Numbers read from the logs:

- training time per iteration: mmengine's ``IterTimerHook`` time of every
  training iteration (the studies log every iteration, ``window_size=1``),
  from mmengine's json log; time per epoch is the sum over the epoch's
  iterations (data loading included, validation excluded);
- test-time cost per image: the median over the test iterations (the first,
  warm-up one left out) of ``time - data_time`` (the model's ``test_step``
  plus the metric's ``process``, without data loading), divided by the
  test batch size, from the ``Iter(test)`` lines of the text log;
- metrics: the test run's final record (``accuracy/top1``, ``mIoU``...).

Timings taken with ``--jobs`` > 1 share the device with the other jobs:
compare arms within one study run, and use ``--jobs 1`` for absolute times.
"""
import argparse
import json
import os
import os.path as osp
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = dict(
    train=osp.join(REPO, 'tools', 'train.py'),
    test=osp.join(REPO, 'tools', 'test.py'))
RESULT_FILE = 'result.json'
# every iteration logged with its own time (no moving average)
LOG_EVERY_ITER = [
    'default_hooks.logger.interval=1', 'log_processor.window_size=1'
]
# per-iteration lines, e.g.
#   Iter(test) [ 3/50]    eta: 0:00:01  time: 0.0213  data_time: 0.0011
# (mmpretrain's runtime writes 'Epoch(test)'); the final metric line has no eta
_TEST_ITER = re.compile(
    r'(?:Epoch|Iter)\(test\) \[\s*(\d+)/(\d+)\]\s+eta: \S+\s+time: ([\d.]+)'
    r'\s+data_time: ([\d.]+)')
_NOT_METRICS = ('time', 'data_time', 'step', 'epoch', 'iter', 'lr', 'memory')


@dataclass
class Job:
    """One tool run of a study.

    Args:
        key (str): Unique name, also the work dir below ``<study-dir>/runs``
            (e.g. ``'train/plain/seed0'``).
        tool (str): ``'train'`` or ``'test'``.
        config (str): Config file.
        options (list[str]): ``--cfg-options`` ``key=value`` items.
        args (list[str]): Other tool arguments (``--tta``...).
        checkpoint_of (str, optional): For a test job, the key of the train
            job whose last checkpoint it evaluates.
        test_batch (int): Images per test iteration (for the per-image cost).
        meta (dict): Copied into the result (arm, seed, passes...).
    """
    key: str
    tool: str
    config: str
    options: List[str] = field(default_factory=list)
    args: List[str] = field(default_factory=list)
    checkpoint_of: Optional[str] = None
    test_batch: int = 1
    meta: Dict = field(default_factory=dict)

    def __post_init__(self):
        if self.tool not in TOOLS:
            raise ValueError(f'Job.tool: got {self.tool!r}; valid tools are '
                             f'{sorted(TOOLS)}.')
        if self.tool == 'test' and self.checkpoint_of is None:
            raise ValueError(f'Job {self.key}: a test job needs '
                             'checkpoint_of (the train job it evaluates).')


def study_parser(name: str, description: str, epilog: str,
                 arms: Sequence[str]) -> argparse.ArgumentParser:
    """A study's argument parser with the options every study shares.

    Args:
        name (str): Study name, for the default output paths.
        description (str): One line for ``--help``.
        epilog (str): The study script's docstring.
        arms (Sequence[str]): The study's arms (``--arms`` choices; all by
            default).
    """
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog)
    parser.add_argument(
        '--arms', nargs='+', choices=list(arms), default=list(arms),
        metavar='ARM', help=f'arms to run (default: all): {", ".join(arms)}')
    add_common_args(parser, name)
    return parser


def add_common_args(parser: argparse.ArgumentParser, name: str) -> None:
    """The command-line options every study shares."""
    parser.add_argument(
        '--study-dir', default=osp.join('work_dirs', f'study_{name}'),
        help='runs, logs and results.json go here (default: '
        f'work_dirs/study_{name})')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--jobs', type=int, default=1,
        help='subprocesses run at once (they share the device)')
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument(
        '--threads', type=int,
        help='OMP_NUM_THREADS of every job (default: CPU cores // jobs)')
    parser.add_argument(
        '--md', default=osp.join('docs', f'study_{name}.md'),
        help=f'Markdown report (default: docs/study_{name}.md)')
    parser.add_argument(
        '--png', default=osp.join('docs', f'study_{name}.png'),
        help=f'plot (default: docs/study_{name}.png)')
    parser.add_argument(
        '--report-only', action='store_true',
        help='run nothing; rebuild results.json and the report from the '
        'finished runs')
    parser.add_argument(
        '--dry-run', action='store_true',
        help='print the command of every job that would run, run nothing')


def epoch_schedule_options(epochs: int) -> List[str]:
    """``--cfg-options`` of an epoch-based run of ``epochs``: validated at
    the end, lr steps at 60 % and 80 % (the classification configs)."""
    return [
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}',
        'param_scheduler.milestones='
        f'[{round(0.6 * epochs)},{round(0.8 * epochs)}]',
    ]


def iter_schedule_options(iters: int) -> List[str]:
    """``--cfg-options`` of an iteration-based run of ``iters`` (the
    segmentation configs: a linear warm-up of at most 20 iterations, then
    poly), validated and checkpointed at the end only."""
    warmup = max(1, min(20, iters // 5))
    return [
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'param_scheduler.0.end={warmup}',
        f'param_scheduler.1.begin={warmup}',
        f'param_scheduler.1.end={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'default_hooks.checkpoint.max_keep_ckpts=1',
    ]


def work_dir_of(study_dir: str, key: str) -> str:
    return osp.join(study_dir, 'runs', *key.split('/'))


def load_result(study_dir: str, key: str) -> Optional[dict]:
    """The stored result of a finished job, or None."""
    path = osp.join(work_dir_of(study_dir, key), RESULT_FILE)
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def signature(job: Job, device: str) -> dict:
    """What makes a run: tool, config, options, arguments and device
    (repository paths relative, so that the record reads the same from any
    checkout path)."""
    def rel(text: str) -> str:
        return text.replace(REPO + os.sep, '')

    return dict(tool=job.tool, config=rel(job.config),
                options=[rel(o) for o in job.options],
                args=[rel(a) for a in job.args], device=device)


def finished_results(jobs: Sequence[Job], study_dir: str,
                     device: str) -> Dict[str, dict]:
    """key -> stored result of every finished job of ``jobs``.

    Raises:
        ValueError: A stored run was made with other settings (another
            ``--epochs``, ``--device``...): its numbers must not be mixed in.
    """
    results = {}
    for job in jobs:
        result = load_result(study_dir, job.key)
        if result is None:
            continue
        expected = signature(job, device)
        stored = result.get('signature', {})
        if stored != expected:
            diff = sorted(k for k in expected
                          if stored.get(k) != expected[k])
            raise ValueError(
                f'{study_dir}: the finished run {job.key} was made with '
                f'other settings ({", ".join(diff)} differ); give another '
                f'--study-dir, or delete {work_dir_of(study_dir, job.key)} '
                'to redo it.')
        results[job.key] = result
    return results


def write_config(path: str, base: str, body: str) -> None:
    """A config file that inherits ``base`` and adds ``body``: for arm
    changes that ``--cfg-options`` cannot express (lists of dicts)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f'# written by a bench/study_*.py run\n'
                f'_base_ = [{osp.abspath(base)!r}]\n{body}\n')


def _write_json(path: str, data) -> None:
    """Write atomically: a half-written result must not mark a job done."""
    tmp = path + '.part'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def command(job: Job, study_dir: str) -> List[str]:
    """The tool command line of ``job``."""
    cmd = [sys.executable, TOOLS[job.tool], job.config]
    if job.tool == 'test':
        train_result = load_result(study_dir, job.checkpoint_of)
        checkpoint = (train_result['checkpoint'] if train_result else
                      f'<last checkpoint of {job.checkpoint_of}>')
        cmd.append(checkpoint)
    cmd += ['--work-dir', work_dir_of(study_dir, job.key), *job.args]
    if job.options:
        cmd += ['--cfg-options', *job.options]
    return cmd


def job_env(device: str, threads: int) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    if device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''  # mmengine would pick a GPU
    return env


def launch(job: Job, study_dir: str, env: dict) -> subprocess.Popen:
    """Start ``job`` in a fresh work dir; its output goes to ``tool.log``."""
    work_dir = work_dir_of(study_dir, job.key)
    shutil.rmtree(work_dir, ignore_errors=True)  # an unfinished attempt
    os.makedirs(work_dir)
    cmd = command(job, study_dir)
    with open(osp.join(work_dir, 'command.txt'), 'w') as f:
        f.write(shlex.join(cmd) + '\n')
    log = open(osp.join(work_dir, 'tool.log'), 'w')
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_file = log
    return proc


def _newest_json_log(work_dir: str) -> List[dict]:
    """Records of the newest run's mmengine json log: training runs write
    ``<timestamp>/vis_data/<timestamp>.json``, test runs
    ``<timestamp>/<timestamp>.json``."""
    logs = []
    for run in os.listdir(work_dir):
        for path in (osp.join(work_dir, run, 'vis_data', run + '.json'),
                     osp.join(work_dir, run, run + '.json')):
            if osp.isfile(path):
                logs.append((run, path))
                break
    if not logs:
        raise RuntimeError(f'no mmengine json log under {work_dir}')
    with open(max(logs)[1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def _metrics(record: dict) -> dict:
    return {
        k: v
        for k, v in record.items()
        if k not in _NOT_METRICS and isinstance(v, (int, float))
    }


def parse_train_log(work_dir: str) -> dict:
    """Timing and last validation metrics of a finished training run."""
    records = _newest_json_log(work_dir)
    train = [r for r in records if 'lr' in r and 'time' in r]
    if not train:
        raise RuntimeError(f'{work_dir}: no training iteration was logged')
    iter_times = [r['time'] for r in train]
    result = dict(
        train_iters=len(train),
        train_s_per_iter=statistics.median(iter_times),
        train_s_total=sum(iter_times))
    if 'epoch' in train[0]:
        per_epoch: Dict[int, float] = {}
        for r in train:
            per_epoch[r['epoch']] = per_epoch.get(r['epoch'], 0.0) + r['time']
        result['train_s_per_epoch'] = statistics.mean(per_epoch.values())
        result['epochs'] = len(per_epoch)
    vals = [r for r in records if 'lr' not in r and _metrics(r)]
    result['val'] = _metrics(vals[-1]) if vals else {}
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        result['checkpoint'] = f.read().strip()
    return result


def parse_test_log(work_dir: str, batch_size: int) -> dict:
    """Metrics and per-image test-time cost of a finished test run."""
    records = [r for r in _newest_json_log(work_dir) if _metrics(r)]
    if not records:
        raise RuntimeError(f'{work_dir}: the test run logged no metric')
    with open(osp.join(work_dir, 'tool.log')) as f:
        text = f.read()
    if 'missing keys in source state_dict' in text:
        # mmengine loads load_from non-strictly: such a model is partly
        # random, and its numbers would be wrong without an error
        raise RuntimeError(
            f'{work_dir}/tool.log: the checkpoint lacks some of the model\'s '
            'weights ("missing keys in source state_dict"); the test is '
            'invalid.')
    iters = [(int(i), float(t) - float(d))
             for i, _, t, d in _TEST_ITER.findall(text)]
    if not iters:
        raise RuntimeError(
            f'{work_dir}/tool.log: no "Iter(test) [i/N] ... time: ... '
            'data_time: ..." line; the test run must log every iteration '
            '(default_hooks.logger.interval=1).')
    steady = [s for i, s in iters if i > 1] or [s for _, s in iters]
    return dict(
        metrics=_metrics(records[-1]),
        test_iters=len(iters),
        test_ms_per_image=1000 * statistics.median(steady) / batch_size)


def collect(job: Job, study_dir: str) -> dict:
    work_dir = work_dir_of(study_dir, job.key)
    if job.tool == 'train':
        result = parse_train_log(work_dir)
    else:
        result = parse_test_log(work_dir, job.test_batch)
    result.update(key=job.key, tool=job.tool, train_key=job.checkpoint_of,
                  meta=dict(job.meta))
    return result


def run_jobs(jobs: Sequence[Job], study_dir: str, n_jobs: int = 1,
             device: str = 'cuda', threads: Optional[int] = None,
             dry_run: bool = False) -> Dict[str, dict]:
    """Run the unfinished ``jobs``, ``n_jobs`` at a time; resumable.

    Returns:
        dict: key -> result of every finished job (old and new).
    """
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError('run_jobs: job keys must be unique')
    results = finished_results(jobs, study_dir, device)
    todo = [j for j in jobs if j.key not in results]
    print(f'{len(jobs)} jobs: {len(results)} finished earlier, '
          f'{len(todo)} to run, {n_jobs} at a time on {device}', flush=True)
    if dry_run:
        for job in todo:
            print(shlex.join(command(job, study_dir)))
        return results
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // n_jobs)
    env = job_env(device, threads)
    failed, running = set(), {}
    start = time.time()
    # a study stopped by a time limit (SIGTERM) or Ctrl-C stops its runs too:
    # an orphaned run would keep the device busy and write into a work dir
    # that the next attempt wipes
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _schedule(todo, running, failed, results, keys, jobs, study_dir,
                  n_jobs, env, device, start)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for job, proc, _ in running.values():
            proc.kill()
            proc.wait()
            proc.log_file.close()
            print(f'  stopped {job.key} (unfinished)', flush=True)
    if failed:
        print(f'{len(failed)} jobs failed or were skipped: '
              f'{sorted(failed)}', flush=True)
    return results


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def _schedule(todo, running, failed, results, keys, jobs, study_dir, n_jobs,
              env, device, start) -> None:
    """Keep ``n_jobs`` of ``todo`` running until all ended (see
    :func:`run_jobs`); ``running``, ``failed`` and ``results`` are updated in
    place so that the caller can stop what still runs."""
    while todo or running:
        for job in list(todo):
            if len(running) >= n_jobs:
                break
            dep = job.checkpoint_of
            if dep in failed or (dep is not None and dep not in keys):
                print(f'  skip {job.key}: {dep} did not finish', flush=True)
                failed.add(job.key)
                todo.remove(job)
            elif dep is None or dep in results:
                running[job.key] = (job, launch(job, study_dir, env),
                                    time.time())
                todo.remove(job)
                print(f'  start {job.key} ({len(running)} running, '
                      f'{len(todo)} waiting, {len(results)} of {len(jobs)} '
                      'done)', flush=True)
        time.sleep(0.5)
        for key, (job, proc, began) in list(running.items()):
            if proc.poll() is None:
                continue
            proc.log_file.close()
            del running[key]
            log = osp.join(work_dir_of(study_dir, key), 'tool.log')
            if proc.returncode != 0:
                failed.add(key)
                print(f'  FAILED {key} (exit {proc.returncode}); see {log}:',
                      flush=True)
                with open(log) as f:
                    print(''.join(f.readlines()[-15:]), flush=True)
                continue
            try:
                result = collect(job, study_dir)
            except (OSError, RuntimeError, KeyError, ValueError) as err:
                failed.add(key)
                print(f'  FAILED {key}: its logs gave no result: {err}',
                      flush=True)
                continue
            result['wall_s'] = time.time() - began
            result['signature'] = signature(job, device)
            _write_json(
                osp.join(work_dir_of(study_dir, key), RESULT_FILE), result)
            results[key] = result
            print(f'  [{len(results)}/{len(jobs)}] {key} done in '
                  f'{result["wall_s"]:.0f} s{_headline(result)}; '
                  f'{time.time() - start:.0f} s since start', flush=True)


def _headline(result: dict) -> str:
    metrics = result.get('metrics') or result.get('val') or {}
    parts = [f'{k} {v:.4g}' for k, v in metrics.items()]
    if 'test_ms_per_image' in result:
        parts.append(f'{result["test_ms_per_image"]:.3g} ms/image')
    return ' (' + ', '.join(parts) + ')' if parts else ''


def mean_std(values: Sequence[float]) -> tuple:
    """Mean and sample standard deviation (0 for one value)."""
    values = list(values)
    if not values:
        return float('nan'), float('nan')
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), std


def summarize(results: Dict[str, dict], metric: str,
              train_costs: Dict[str, str], order: Sequence[str]) -> List[dict]:
    """One row per arm: ``metric`` mean/std over the seeds, mean costs.

    Args:
        results: key -> result of :func:`run_jobs`.
        metric: Key of the test runs' ``metrics`` (``'mIoU'``...).
        train_costs: Row field -> field of the training run's result that
            is averaged into it (``'train_s_per_iter'``...).
        order: Arm names in the order of the rows.

    Returns:
        list[dict]: The arm's ``meta`` plus ``name``, ``mean``, ``std``,
        ``n``, ``seeds``, ``test_ms_per_image`` and the ``train_costs``.
    """
    arms = {}
    for result in results.values():
        if result['tool'] != 'test':
            continue
        meta = dict(result['meta'])
        seed = meta.pop('seed')
        arm = arms.setdefault(meta['arm'], dict(
            meta, name=meta['arm'], values=[], seeds=[],
            costs={k: [] for k in ['test_ms_per_image', *train_costs]}))
        arm['values'].append(result['metrics'][metric])
        arm['seeds'].append(seed)
        arm['costs']['test_ms_per_image'].append(result['test_ms_per_image'])
        train = results.get(result['train_key'], {})
        for field, source in train_costs.items():
            if source in train:
                arm['costs'][field].append(train[source])
    rows = []
    for name in sorted(arms, key=lambda n: (list(order).index(n)
                                            if n in order else len(order), n)):
        arm = arms[name]
        mean, std = mean_std(arm.pop('values'))
        costs = arm.pop('costs')
        rows.append(dict(arm, mean=mean, std=std, n=len(arm['seeds']),
                         **{k: mean_std(v)[0] for k, v in costs.items()}))
    return rows


def finish_study(args, argv: Sequence[str], script: str, jobs: Sequence[Job],
                 metric: str, train_costs: Dict[str, str], report) -> None:
    """Run (or, with ``--report-only``, only read) the jobs; write
    ``results.json``, the report and the plot; print one line per arm.

    Args:
        args: The parsed common arguments (:func:`add_common_args`).
        argv: The command-line arguments, recorded in the outputs.
        script: The study script's path.
        jobs, metric, train_costs: See :func:`run_jobs`, :func:`summarize`.
        report: ``report(argv, rows, machine)`` writes ``--md``/``--png``.
    """
    if args.device == 'cuda' and not (args.report_only or args.dry_run):
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--device cuda: no GPU is visible to torch; use '
                             '--device cpu.')
    if args.report_only:
        results = finished_results(jobs, args.study_dir, args.device)
    else:
        results = run_jobs(jobs, args.study_dir, args.jobs, args.device,
                           args.threads, args.dry_run)
    if args.dry_run:
        return
    order = list(
        dict.fromkeys(j.meta['arm'] for j in jobs if j.tool == 'test'))
    rows = summarize(results, metric, train_costs, order)
    machine = machine_info(args.device)
    argv = [osp.relpath(osp.abspath(script), REPO)] + list(argv)
    path = write_results(args.study_dir, argv, machine, results, rows)
    if not rows:
        print('no finished test run yet: no report written')
        return
    report(argv, rows, machine)
    print(f'results: {path}; report: {args.md}; plot: {args.png}')
    for row in rows:
        print(f'  {row["name"]:<22} {metric} {fmt(row["mean"], row["std"])} '
              f'({row["n"]} seeds), {row["test_ms_per_image"]:.3g} ms/image')


def machine_info(device: str) -> str:
    """One line: CPU, cores, GPU (if used), torch version."""
    import torch
    cpu = platform.processor() or platform.machine()
    text = (f'{cpu}, {os.cpu_count()} CPU cores, Python '
            f'{platform.python_version()}, torch {torch.__version__}')
    if device == 'cuda' and torch.cuda.is_available():
        text += f', GPU {torch.cuda.get_device_name(0)}'
    return text


def fmt(mean: float, std: Optional[float] = None, digits: int = 2) -> str:
    if mean != mean:  # nan
        return 'n/a'
    if std is None:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def write_report(md_path: str, title: str, argv: Sequence[str],
                 machine: str, sections: Sequence[tuple],
                 notes: Sequence[str] = ()) -> None:
    """Markdown: the exact command, the machine, then one table a section.

    Args:
        sections: ``(heading, header cells, rows of cells)`` triples.
    """
    lines = [f'# {title}', '', 'Command:', '', '```bash',
             'PYTHONPATH=. python ' + shlex.join(argv), '```', '',
             f'Machine: {machine}.', '']
    for heading, header, rows in sections:
        lines += [f'## {heading}', '', '| ' + ' | '.join(header) + ' |',
                  '|' + '---|' * len(header)]
        lines += ['| ' + ' | '.join(map(str, row)) + ' |' for row in rows]
        lines.append('')
    lines += list(notes)
    os.makedirs(osp.dirname(osp.abspath(md_path)), exist_ok=True)
    with open(md_path, 'w') as f:
        f.write('\n'.join(lines).rstrip() + '\n')


def plot_arms(png_path: str, arms: Sequence[dict], metric_label: str,
              cost_key: str, cost_label: str, title: str) -> None:
    """Left: metric per arm (mean ± std). Right: metric against a cost.

    Args:
        arms: dicts with ``name``, ``mean``, ``std`` and ``cost_key``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 0.4 * len(arms) + 2.5))
    names = [a['name'] for a in arms]
    left.barh(range(len(arms)), [a['mean'] for a in arms],
              xerr=[a['std'] for a in arms], color='tab:blue', alpha=0.8)
    left.set_yticks(range(len(arms)), names)
    left.invert_yaxis()
    values = [a['mean'] for a in arms if a['mean'] == a['mean']]
    if values:
        spread = max(values) - min(values)
        left.set_xlim(max(0.0, min(values) - max(spread, 1.0)),
                      max(values) + max(spread, 1.0) * 0.5)
    left.set_xlabel(metric_label + ' (mean ± std over seeds)')
    for arm in arms:
        right.errorbar(arm[cost_key], arm['mean'], yerr=arm['std'], fmt='o',
                       capsize=3)
        right.annotate(arm['name'], (arm[cost_key], arm['mean']),
                       textcoords='offset points', xytext=(4, 4), fontsize=8)
    right.set_xlabel(cost_label)
    right.set_ylabel(metric_label)
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(png_path)), exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def write_results(study_dir: str, argv: Sequence[str], machine: str,
                  results: Dict[str, dict], summary: Sequence[dict]) -> str:
    """``<study-dir>/results.json``: command, machine, runs and summary."""
    path = osp.join(study_dir, 'results.json')
    os.makedirs(study_dir, exist_ok=True)
    _write_json(
        path,
        dict(
            command='PYTHONPATH=. python ' + shlex.join(argv),
            machine=machine,
            runs=[results[k] for k in sorted(results)],
            summary=list(summary)))
    return path
