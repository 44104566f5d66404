"""The DAS step's size said at the start, and AMP refused without a GPU."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import run_tool
from mmdas.utils.step_size import (check_amp_device, das_step_summary,
                                   train_crop)

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                      'configs')


@pytest.mark.parametrize('name, frames, crop', [
    ('das_deeplabv3plus_cityscapes', '2 images x 8 frames = 16 frames',
     '512x1024'),
    ('das_deeplabv3plus_voc12aug', '4 images x 8 frames = 32 frames',
     '512x512'),  # a ConcatDataset of train and aug
    ('das_resnet50_imagenet', '32 images x 8 frames = 256 frames',
     '224x224'),
    ('das_resnet18_cifar10', '16 images x 8 frames = 128 frames', '32x32'),
])
def test_das_step_summary_names_frames_and_crop(name, frames, crop):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name + '.py'))
    line = das_step_summary(cfg)
    assert f'{frames} per GPU step' in line
    assert f'crop {crop},' in line
    assert 'with_cp=False' in line
    cfg.model.backbone.with_cp = True
    cfg.train_dataloader.batch_size = 1
    line = das_step_summary(cfg)
    assert '1 images x 8 frames = 8 frames' in line and 'with_cp=True' in line


def test_no_summary_for_2d_configs():
    cfg = Config.fromfile(
        osp.join(CONFIG_DIR, 'plain_deeplabv3plus_cityscapes.py'))
    assert das_step_summary(cfg) is None
    assert train_crop(cfg) == '512x1024'


def test_amp_without_a_gpu_is_refused_naming_the_field(monkeypatch):
    import mmengine.device as device
    for fn in ('is_cuda_available', 'is_npu_available', 'is_mlu_available',
               'is_musa_available'):
        monkeypatch.setattr(device, fn, lambda: False)
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper')))
    with pytest.raises(ValueError, match="optim_wrapper.type='AmpOptimWr"):
        check_amp_device(cfg)
    check_amp_device(Config(dict(optim_wrapper=dict(type='OptimWrapper'))))
    monkeypatch.setattr(device, 'is_cuda_available', lambda: True)
    check_amp_device(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU machine')
def test_train_tool_refuses_amp_on_a_cpu_before_building(tmp_path):
    proc = run_tool([
        sys.executable, 'tools/train.py',
        osp.join(CONFIG_DIR, 'das_resnet18_fashionmnist.py'), '--amp',
        '--work-dir', str(tmp_path)
    ], check=False, timeout=300)
    assert proc.returncode != 0
    assert "optim_wrapper.type='AmpOptimWrapper'" in proc.stdout
    assert 'AssertionError' not in proc.stdout


def test_real_size_fit_extrapolates_the_line():
    sys.path.insert(0, osp.join(osp.dirname(CONFIG_DIR), 'bench'))
    import bench_real_size as bench
    a, b, res = bench.fit_line([(1., 3.), (2., 5.), (4., 9.)])
    assert (a, b) == pytest.approx((1., 2.)) and res == pytest.approx(0.)
    runs = [dict(config='das_deeplabv3plus_voc12aug', crop=[h, h], images=1,
                 frames=8, with_cp=False, amp=False, pixels=h * h,
                 step_s=h * h * 1e-4, peak_gib=0.5 + h * h * 1e-4)
            for h in (96, 128)]
    text = bench.table(runs, real=False)
    # 4 images of 512x512 as shipped: 0.5 + 4 * 512^2 * 1e-4 GiB
    assert f'| {0.5 + 4 * 512**2 * 1e-4:.1f} |' in text
    assert '512x512 x 4' in text
