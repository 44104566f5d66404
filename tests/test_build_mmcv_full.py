"""tools/build_mmcv_full.py: the checks that run before the long build."""
import importlib.util
import os.path as osp
from types import SimpleNamespace

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    'build_mmcv_full', osp.join(REPO, 'tools', 'build_mmcv_full.py'))
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

# the standard flags of mmcv 2.1.0's setup.py, as they appear there
MMCV_SETUP_FLAGS = """\
'nvcc': [cuda_args, '-std=c++14'] if cuda_args else ['-std=c++14'],
'cxx': ['-std=c++14'],
extra_compile_args['cxx'] = ['-std=c++14']
extra_compile_args['cxx'] = ['-std=c++17']
extra_compile_args['cxx'] = ['/std:c++14']
extra_compile_args['cxx'] = ['/std:c++17']
extra_compile_args['cxx'] = ['-Wall', '-std=c++17']
extra_compile_args['nvcc'] += ['-std=c++14']
extra_compile_args['nvcc'] += ['-std=c++17']
"""


def test_patch_sets_every_standard_flag_to_cpp20(tmp_path):
    setup_py = tmp_path / 'setup.py'
    setup_py.write_text('import os\n' + MMCV_SETUP_FLAGS)
    build.patch_language_standard(setup_py)
    text = setup_py.read_text()
    assert 'c++14' not in text and 'c++17' not in text
    assert text.count("'-std=c++20'") == 8
    assert text.count("'/std:c++20'") == 2
    assert text.startswith('import os\n')


def test_patch_refuses_an_unknown_setup_py(tmp_path):
    setup_py = tmp_path / 'setup.py'
    original = MMCV_SETUP_FLAGS.replace("['-std=c++14']\n", "[]\n", 1)
    setup_py.write_text(original)
    with pytest.raises(SystemExit, match='found 9 language-standard flags'):
        build.patch_language_standard(setup_py)
    assert setup_py.read_text() == original  # left as it was


def test_sdist_with_wrong_hash_is_refused(tmp_path):
    fake = tmp_path / build.SDIST_NAME
    fake.write_bytes(b'not mmcv')
    args = SimpleNamespace(sdist=str(fake))
    with pytest.raises(SystemExit, match=f'expected {build.MMCV_SDIST_SHA256}'):
        build.fetch_sdist(args, tmp_path)


def test_progress_counts_compiled_objects(tmp_path):
    temp = tmp_path / 'build' / 'temp.linux-x86_64-cpython-311'
    temp.mkdir(parents=True)
    objs = [temp / f'op{i}.o' for i in range(3)]
    (temp / 'build.ninja').write_text(
        f'rule compile\n'
        f'build {objs[0]}: compile /src/op0.cpp\n'
        f'build {objs[1]}: cuda_compile /src/op1.cu\n'
        f'build {objs[2]}: compile /src/op2.cpp\n'
        f'build /out/_ext.so: link {objs[0]} {objs[1]} {objs[2]}\n')
    assert build.count_objects(tmp_path) == (0, 3)
    objs[1].write_bytes(b'')
    assert build.count_objects(tmp_path) == (1, 3)


def test_cuda_choice(monkeypatch):
    assert build.choose_cuda('0') == (False, 'MMCV_CUDA=0', None)
    monkeypatch.setattr(build, 'find_cuda_home', lambda: '/no/cuda')
    with_cuda, reason, home = build.choose_cuda('auto')
    assert not with_cuda and home is None
    assert 'CUDA_HOME=/no/cuda' in reason
    with pytest.raises(SystemExit, match='MMCV_CUDA=1 but .*CUDA_HOME=/no/cuda'):
        build.choose_cuda('1')
