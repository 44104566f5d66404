#!/usr/bin/env python
"""Build and install full mmcv 2.1.0 (compiled ``mmcv.ops``) against the
torch already installed in this environment.

Why this exists: mmcv 2.1.0 is the last release mmseg 1.2.2 accepts, PyPI has
only its sdist, and its ``setup.py`` hard-codes ``-std=c++17`` for the host
compiler and nvcc. torch >= 2.14's headers require C++20, so a plain
``pip install mmcv==2.1.0`` fails with ``#error C++20 or later compatible
compiler is required to use ATen``. Compiler flags from the environment cannot
fix it: ``extra_compile_args`` come last on the command line. This script

1. fetches the sdist through pip (``pip download --no-binary :all:``) or takes
   a copy given with ``--sdist``, and checks its sha256 against the pinned one;
2. unpacks it and rewrites the language-standard literals in ``setup.py`` to
   C++20 (host compiler and nvcc; nvcc accepts ``-std=c++20`` from CUDA 12);
3. builds a wheel with the installed torch (no build isolation, ninja,
   ``MAX_JOBS``), CUDA ops included when a CUDA build is chosen (see
   ``--cuda``), and installs it. The wheel is cached under ``--work-dir`` per
   torch version and op set, so rebuilding the venv does not recompile.

Example::

    MAX_JOBS=2 .venv/bin/python tools/build_mmcv_full.py
    TORCH_CUDA_ARCH_LIST=9.0 .venv/bin/python tools/build_mmcv_full.py --cuda 1

Measured (CPU ops, 77 objects, MAX_JOBS=2, 2 cores): about 16 min on free
cores, 66 min on shared ones (docs/compat.md).
"""
import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

MMCV_VERSION = '2.1.0'
# sha256 of mmcv-2.1.0.tar.gz as published on PyPI (pip checks the index's
# hash on download; we check it again here, and for copies given by --sdist).
MMCV_SDIST_SHA256 = \
    'd387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f'
SDIST_NAME = f'mmcv-{MMCV_VERSION}.tar.gz'
# '-std=c++14', '-std=c++17' (gcc/clang/nvcc) and '/std:c++14|17' (MSVC).
STD_FLAG = re.compile(r"(['\"])(-std=|/std:)c\+\+1[47]\1")
# Number of standard literals in mmcv 2.1.0's setup.py; a different count
# means a different file and the patch is refused rather than guessed.
EXPECTED_STD_FLAGS = 10
MIN_NVCC_MAJOR = 12  # first nvcc that accepts -std=c++20


def parse_args():
    parser = argparse.ArgumentParser(
        description='Build full mmcv 2.1.0 (compiled ops) against the '
        'installed torch, with the C++20 fix for torch >= 2.14.')
    parser.add_argument(
        '--work-dir',
        default='build/mmcv-full',
        help='where the sdist, the unpacked source, the log and the cached '
        'wheels go (default: %(default)s)')
    parser.add_argument(
        '--sdist',
        help='use this copy of mmcv-2.1.0.tar.gz instead of downloading it '
        '(its sha256 is checked all the same)')
    parser.add_argument(
        '--cuda',
        choices=['auto', '0', '1'],
        default=os.environ.get('MMCV_CUDA', 'auto'),
        help='build the CUDA ops: 1 always (needs nvcc >= 12 and a CUDA '
        'torch), 0 never, auto (default, env MMCV_CUDA) when a CUDA toolkit '
        'is found, torch is a CUDA build and either a GPU is visible or '
        'TORCH_CUDA_ARCH_LIST names the target GPUs')
    parser.add_argument(
        '--rebuild',
        action='store_true',
        help='compile again even if a cached wheel exists')
    parser.add_argument(
        '--only-sdist',
        action='store_true',
        help='fetch and check the sdist into --work-dir, print its path and '
        'stop (to copy it to a machine without network)')
    parser.add_argument(
        '--no-install',
        action='store_true',
        help='build (or find) the wheel, print its path, do not install it')
    return parser.parse_args()


def log(msg):
    print(f'[build_mmcv_full] {msg}', flush=True)


def pip(*args, **kwargs):
    """Run this interpreter's pip; raise if it fails (unless check=False)."""
    kwargs.setdefault('check', True)
    return subprocess.run([sys.executable, '-m', 'pip', *args], **kwargs)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def check_build_requirements():
    """Fail early, naming the fix, on what the sdist's setup.py needs."""
    missing = []
    # mmcv's setup.py imports pkg_resources, which setuptools 82 removed
    if importlib.util.find_spec('pkg_resources') is None:
        missing.append('"setuptools<82"')
    missing += [
        name for name in ('wheel', 'ninja', 'torch')
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        sys.exit('build_mmcv_full: install first: pip install ' +
                 ' '.join(missing))


def fetch_sdist(args, work_dir):
    """Return the path of a hash-checked mmcv-2.1.0 sdist."""
    if args.sdist:
        sdist = Path(args.sdist)
    else:
        sdist = work_dir / SDIST_NAME
        if not sdist.exists():
            log(f'downloading the mmcv {MMCV_VERSION} sdist through pip')
            # no build isolation: pip runs setup.py for metadata, and it
            # imports torch
            pip('download', '--no-deps', '--no-binary', ':all:',
                '--no-build-isolation', '-d', str(work_dir),
                f'mmcv=={MMCV_VERSION}')
    if not sdist.is_file():
        sys.exit(f'build_mmcv_full: sdist {sdist} not found')
    digest = sha256_of(sdist)
    if digest != MMCV_SDIST_SHA256:
        sys.exit(f'build_mmcv_full: {sdist} has sha256 {digest}, expected '
                 f'{MMCV_SDIST_SHA256} (mmcv {MMCV_VERSION} from PyPI). '
                 'Delete it and run again to download a fresh copy.')
    log(f'{sdist.name}: sha256 ok')
    return sdist


def patch_language_standard(setup_py):
    """Rewrite every C++14/C++17 standard literal in setup.py to C++20."""
    text = setup_py.read_text()
    patched, count = STD_FLAG.subn(r'\1\2c++20\1', text)
    if count != EXPECTED_STD_FLAGS:
        sys.exit(f'build_mmcv_full: found {count} language-standard flags in '
                 f'{setup_py}, expected {EXPECTED_STD_FLAGS}; this is not the '
                 f'mmcv {MMCV_VERSION} setup.py this script knows.')
    setup_py.write_text(patched)
    log(f'setup.py: {count} -std flags set to c++20')


def unpack(sdist, work_dir):
    src_root = work_dir / 'src'
    shutil.rmtree(src_root, ignore_errors=True)
    src_root.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        # the 'data' filter refuses links and paths out of src_root
        safe = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
        tar.extractall(src_root, **safe)
    src = src_root / f'mmcv-{MMCV_VERSION}'
    patch_language_standard(src / 'setup.py')
    return src


def nvcc_release(cuda_home):
    """Return the (major, minor) release of nvcc under cuda_home."""
    nvcc = Path(cuda_home) / 'bin' / 'nvcc'
    out = subprocess.run([str(nvcc), '--version'], capture_output=True,
                         text=True, check=True).stdout
    match = re.search(r'release (\d+)\.(\d+)', out)
    if match is None:
        sys.exit(f'build_mmcv_full: cannot read the release of {nvcc}')
    return int(match.group(1)), int(match.group(2))


def is_cuda_toolkit(root):
    return root is not None and (Path(root) / 'bin' / 'nvcc').exists() and (
        Path(root) / 'include' / 'cuda_runtime.h').exists()


def find_cuda_home():
    """The CUDA toolkit root: CUDA_HOME/CUDA_PATH if set, else torch's guess
    from ``nvcc`` on PATH, else the root that nvcc reports (an ``nvcc`` on
    PATH may be a wrapper script outside the toolkit). None if not found."""
    from torch.utils.cpp_extension import CUDA_HOME
    if os.environ.get('CUDA_HOME') or os.environ.get('CUDA_PATH'):
        return CUDA_HOME
    if is_cuda_toolkit(CUDA_HOME):
        return CUDA_HOME
    nvcc = shutil.which('nvcc')
    if nvcc is None:
        return None
    dry_run = subprocess.run(
        [nvcc, '-dryrun', '-x', 'cu', '-c', os.devnull, '-o', os.devnull],
        capture_output=True, text=True).stderr
    here = re.search(r'^#\$ _HERE_=(.+)$', dry_run, re.M)
    return str(Path(here.group(1)).parent) if here else CUDA_HOME


def choose_cuda(mode):
    """Decide whether to build the CUDA ops.

    Returns:
        tuple: (build CUDA ops, reason to print, CUDA toolkit root or None).
    """
    import torch
    if mode == '0':
        return False, 'MMCV_CUDA=0', None
    cuda_home = find_cuda_home()
    problems = []
    if torch.version.cuda is None:
        problems.append(f'torch {torch.__version__} is not a CUDA build')
    if not is_cuda_toolkit(cuda_home):
        problems.append(f'no CUDA toolkit found (CUDA_HOME={cuda_home}); set '
                        'CUDA_HOME to the toolkit root, the folder holding '
                        'bin/nvcc and include/cuda_runtime.h')
    if not (torch.cuda.is_available()
            or os.environ.get('TORCH_CUDA_ARCH_LIST')):
        # torch takes the target archs from the visible GPUs
        problems.append('no GPU visible and TORCH_CUDA_ARCH_LIST unset; set '
                        'it to the GPUs to build for (e.g. '
                        'TORCH_CUDA_ARCH_LIST=9.0)')
    if problems and mode == 'auto':
        return False, '; '.join(problems), None
    if problems:
        sys.exit('build_mmcv_full: MMCV_CUDA=1 but ' + '; '.join(problems))
    release = nvcc_release(cuda_home)
    if release[0] < MIN_NVCC_MAJOR:
        sys.exit(f'build_mmcv_full: nvcc {release[0]}.{release[1]} at '
                 f'{cuda_home} cannot compile C++20, which torch '
                 f'{torch.__version__} headers need; use CUDA >= '
                 f'{MIN_NVCC_MAJOR} or MMCV_CUDA=0 for CPU ops only')
    return True, (f'nvcc {release[0]}.{release[1]} at {cuda_home}, torch '
                  f'CUDA {torch.version.cuda}'), cuda_home


def count_objects(src):
    """``(compiled, total)`` object files of the ninja build under src."""
    ninja_files = list((src / 'build').glob('temp*/build.ninja'))
    if not ninja_files:
        return 0, 0
    objects = re.findall(r'^build (\S+\.o): (?:cuda_)?compile',
                         ninja_files[0].read_text(), re.M)
    return sum(Path(obj).exists() for obj in objects), len(objects)


def build_wheel(src, wheel_dir, cuda_home, log_path):
    """Compile the extension into a wheel, with the CUDA ops if cuda_home is
    given; report progress every minute (torch hides ninja's output), keep
    the full output in log_path."""
    env = dict(os.environ, MMCV_WITH_OPS='1')
    env.setdefault('MAX_JOBS', str(len(os.sched_getaffinity(0))))
    if cuda_home:
        env.update(FORCE_CUDA='1', CUDA_HOME=cuda_home)
    else:
        # mmcv's setup.py builds CUDA ops whenever torch sees a GPU.
        env.pop('FORCE_CUDA', None)
        env['CUDA_VISIBLE_DEVICES'] = ''
    cmd = [
        sys.executable, '-m', 'pip', 'wheel', '-v', '--no-deps',
        '--no-build-isolation', '-w', str(wheel_dir), str(src)
    ]
    log(f'compiling with MAX_JOBS={env["MAX_JOBS"]}, full log in {log_path}')
    start = time.monotonic()
    with open(log_path, 'w') as log_file:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        while True:
            try:
                proc.wait(timeout=60)
                break
            except subprocess.TimeoutExpired:
                done, total = count_objects(src)
                minutes = (time.monotonic() - start) / 60
                log(f'{done}/{total} objects compiled, {minutes:.0f} min')
    if proc.returncode != 0:
        tail = Path(log_path).read_text().splitlines()[-40:]
        print('\n'.join(tail), file=sys.stderr)
        sys.exit(f'build_mmcv_full: the build failed (exit '
                 f'{proc.returncode}); full log: {log_path}')
    log(f'built in {(time.monotonic() - start) / 60:.1f} min')


def main():
    args = parse_args()
    work_dir = Path(args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    if args.only_sdist:
        print(fetch_sdist(args, work_dir))
        return
    check_build_requirements()
    import torch

    with_cuda, reason, cuda_home = choose_cuda(args.cuda)
    log(('CUDA and CPU ops: ' if with_cuda else 'CPU ops only: ') + reason)
    # A wheel is only valid for the torch it was compiled against.
    tag = f'torch{torch.__version__}-{"cuda" if with_cuda else "cpu"}ops'
    if with_cuda:
        tag += '-' + os.environ.get('TORCH_CUDA_ARCH_LIST', 'visible-gpus')
    wheel_dir = work_dir / 'wheels' / re.sub(r'[^\w.+-]', '_', tag)
    wheels = sorted(wheel_dir.glob(f'mmcv-{MMCV_VERSION}-*.whl'))
    if wheels and not args.rebuild:
        log(f'reusing {wheels[-1]} (--rebuild to compile again)')
    else:
        src = unpack(fetch_sdist(args, work_dir), work_dir)
        shutil.rmtree(wheel_dir, ignore_errors=True)
        wheel_dir.mkdir(parents=True)
        build_wheel(src, wheel_dir, cuda_home, work_dir / 'build.log')
        wheels = sorted(wheel_dir.glob(f'mmcv-{MMCV_VERSION}-*.whl'))
    if args.no_install:
        print(wheels[-1])
        return
    # mmcv-lite and mmcv both provide the `mmcv` package: keep only one.
    pip('uninstall', '-q', '-y', 'mmcv-lite', check=False)
    pip('install', '-q', '--force-reinstall', '--no-deps', str(wheels[-1]))
    # its dependencies (mmengine, addict, yapf, opencv, ...) from the index
    pip('install', '-q', str(wheels[-1]))
    check = subprocess.run(
        [
            sys.executable, '-c', 'import mmcv, mmcv.ops; from mmcv.ops '
            'import nms; print(mmcv.__version__, mmcv.__file__)'
        ],
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=''),
        capture_output=True,
        text=True)
    if check.returncode != 0:
        sys.exit('build_mmcv_full: installed, but importing mmcv.ops failed:\n'
                 + check.stderr[-2000:])
    log(f'installed mmcv {check.stdout.strip()} with compiled ops')


if __name__ == '__main__':
    main()
