"""OpenMMLab's mim sees mmdas: model-index.yml, the metafiles and
``mmdas/.mim``.

mim finds a package's configs, tools and model index under
``<install location>/mmdas/.mim``. The checkout holds them as symlinks
(``mmdas/.mim/{configs,tools,model-index.yml}``); the wheel copies them.
The mim commands run on a wheel installed into a temporary folder, and on
the editable install with the checkout on ``PYTHONPATH`` (a PEP 660 editable
install puts the distribution in site-packages, where mim then looks for
``mmdas/``; the checkout first on the path makes mim find the checkout's
``mmdas.egg-info`` instead; see docs/deployment.md).
"""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, seg_options, tool_env

pytest.importorskip('mim')
DEMO = 'configs/das_deeplabv3plus_r18_embedded.py'


def _metafiles():
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    return [osp.join(REPO, path) for path in index['Import']]


def test_every_shipped_config_is_in_one_metafile_with_its_frames():
    from mmengine.config import Config
    listed = {}
    for metafile in _metafiles():
        for model in yaml.safe_load(open(metafile))['Models']:
            assert model['Config'] not in listed, model['Config']
            listed[model['Config']] = model
    shipped = {osp.relpath(p, REPO)
               for p in glob.glob(osp.join(REPO, 'configs', '*.py'))}
    assert set(listed) == shipped
    for path in (DEMO, 'configs/plain_deeplabv3plus_r18_embedded.py',
                 'configs/das_search_resnet18_embedded_digits_cls.py'):
        cfg = Config.fromfile(osp.join(REPO, path))
        pre = cfg.model.data_preprocessor
        source = pre.get('policy') or pre.get('cell') or dict(num_frames=1)
        assert listed[path]['Metadata']['Frames'] == source['num_frames']
    # results only where measured: the demo's test mIoU (README)
    measured = {path: model['Results'][0]['Metrics']
                for path, model in listed.items()
                if model['Results'][0]['Metrics']}
    assert measured == {DEMO: {'mIoU': 65.91}}


def test_checkout_links_mim_folders():
    mim_dir = osp.join(REPO, 'mmdas', '.mim')
    for name in ('configs', 'tools', 'model-index.yml'):
        assert osp.realpath(osp.join(mim_dir, name)) == osp.join(REPO, name)


@pytest.fixture(scope='module')
def wheel_site(tmp_path_factory):
    """mmdas built as a wheel and installed into a folder of its own."""
    root = tmp_path_factory.mktemp('mim')
    src = root / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'README.md', 'model-index.yml'):
        shutil.copy(osp.join(REPO, name), src / name)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    for name in ('mmdas', 'configs', 'tools'):
        shutil.copytree(osp.join(REPO, name), src / name, symlinks=True,
                        ignore=ignore)
    site = root / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-build-isolation', '--no-compile', '--target', str(site),
        str(src)
    ], check=True, timeout=600, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    return str(site)


def _mim(site, args, cwd, timeout=600):
    """``mim ARGS`` on the wheel in ``site``, or (``site=None``) on the
    editable install with the checkout first on ``PYTHONPATH``."""
    env = tool_env()
    if site is not None:
        # the installed wheel first, not the checkout the tests run from
        env['PYTHONPATH'] = os.pathsep.join([site, env['PYTHONPATH']])
    proc = subprocess.run([sys.executable, '-m', 'mim', *args], cwd=cwd,
                          env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def test_wheel_holds_configs_tools_and_index(wheel_site):
    mim_dir = osp.join(wheel_site, 'mmdas', '.mim')
    assert osp.isfile(osp.join(mim_dir, 'model-index.yml'))
    assert osp.isfile(osp.join(mim_dir, 'tools', 'train.py'))
    assert osp.isfile(osp.join(mim_dir, 'tools', 'deployment',
                               'pytorch2onnx.py'))
    assert osp.isfile(osp.join(mim_dir, DEMO))
    assert osp.isfile(osp.join(mim_dir, 'configs', 'das_deeplabv3plus',
                               'metafile.yml'))
    assert not osp.islink(osp.join(mim_dir, 'configs'))  # copied


def test_mim_search_lists_the_models(wheel_site, tmp_path):
    out = _mim(wheel_site, ['search', 'mmdas', '--config',
                            'das_deeplabv3plus_r18_embedded'], tmp_path)
    assert 'config id: das_deeplabv3plus_r18_embedded' in out
    assert '65.91' in out and 'gsfresnetv1c-18' in out
    every = _mim(wheel_site, ['search', 'mmdas'], tmp_path)
    assert every.count('config id:') == len(
        glob.glob(osp.join(REPO, 'configs', '*.py')))


@pytest.fixture(params=['wheel', 'editable'])
def mim_site(request):
    """Where mim finds mmdas: the installed wheel, or the checkout of the
    editable install (``make venv``) through its ``mmdas.egg-info``."""
    if request.param == 'wheel':
        return request.getfixturevalue('wheel_site')
    if not glob.glob(osp.join(REPO, '*.egg-info')):
        pytest.skip('mmdas is not editable-installed from this checkout')
    return None


def test_mim_search_sees_an_editable_install(tmp_path):
    if not glob.glob(osp.join(REPO, '*.egg-info')):
        pytest.skip('mmdas is not editable-installed from this checkout')
    out = _mim(None, ['search', 'mmdas', '--config',
                      'das_deeplabv3plus_r18_embedded'], tmp_path)
    assert 'config id: das_deeplabv3plus_r18_embedded' in out
    assert '65.91' in out


@pytest.mark.slow  # ~25 s each: a training and a test through mim
def test_mim_train_and_test_run_the_packaged_tools(mim_site, tmp_path,
                                                   tiny_seg_root):
    wheel_site = mim_site
    work_dir = str(tmp_path / 'work')
    options = seg_options(tiny_seg_root, max_iters=2)
    # a config name mim resolves from the package's .mim/configs
    out = _mim(wheel_site, [
        'train', 'mmdas', 'das_deeplabv3plus_r18_embedded.py', '--gpus', '0',
        '--work-dir', work_dir, '--cfg-options', *options
    ], tmp_path)
    assert 'Iter(train) [2/2]' in out
    checkpoint = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(checkpoint)
    out = _mim(wheel_site, [
        'test', 'mmdas', DEMO, '--checkpoint', checkpoint, '--gpus', '0',
        '--work-dir', work_dir, '--cfg-options', *options
    ], tmp_path)
    assert 'mIoU' in out
