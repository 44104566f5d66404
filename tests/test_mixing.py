"""The lines of docs/mixing_das.md turn stock mmseg configs into DAS ones."""
import glob
import os.path as osp
import re
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import run_tool
from fixtures import check_first_loss, make_cityscapes, shrink_config
from mmdas.compat import mmcv_has_compiled_ops
from test_configs_e2e import run_train

LITE = not mmcv_has_compiled_ops()

DOC = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'docs',
               'mixing_das.md')


def doc_template():
    text = open(DOC).read()
    block = re.search(r'mixing-template.*?```python\n(.*?)```', text, re.S)
    assert block, 'docs/mixing_das.md lost its template block'
    return block.group(1)


# stock configs that are not ours: (base, decode head type, aux head type)
STOCK = {
    'fcn': ('mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py',
            'FCNHead', 'FCNHead'),
    'pspnet': ('mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
               'PSPHead', 'FCNHead'),
    # CCHead builds mmcv.ops.CrissCrossAttention: needs full mmcv
    'ccnet': ('mmseg::ccnet/ccnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
              'CCHead', 'FCNHead'),
}
NEEDS_FULL_MMCV = pytest.mark.skipif(
    LITE, reason='needs full mmcv (MMCV_FULL=1 make venv)')


def das_config_from_doc(name, tmp_path):
    """Apply the doc's template to stock config ``name``, shrink it to a
    tiny Cityscapes fixture; return (config, path of the shrunk dump)."""
    base, head, aux = STOCK[name]
    template = doc_template()
    text = template.replace(
        'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py', base)
    text = text.replace("wrapped_type='PSPHead'", f"wrapped_type='{head}'")
    assert text.count('wrapped_type') == 2
    config = tmp_path / f'das_{name}.py'
    config.write_text(text)

    cfg = Config.fromfile(str(config))
    assert cfg.model.backbone.type == 'GSFResNetV1c'
    assert cfg.model.decode_head.wrapped_type == head
    root = make_cityscapes(str(tmp_path / 'cityscapes'))
    shrink_config(cfg, root)
    shrunk = str(tmp_path / f'das_{name}_tiny.py')
    cfg.dump(shrunk)
    return cfg, shrunk


@pytest.mark.parametrize('name', [
    'fcn',
    pytest.param('pspnet', marks=pytest.mark.slow),  # fcn shows the recipe
    pytest.param('ccnet', marks=[pytest.mark.slow, NEEDS_FULL_MMCV])
])
def test_doc_lines_make_stock_config_das(name, tmp_path):
    cfg, shrunk = das_config_from_doc(name, tmp_path)
    log = run_train(shrunk, tmp_path / 'work')
    assert re.search(r'mIoU: [0-9.]+', log), log[-2000:]
    # both wrapped heads fuse the frames and their losses add up as in the
    # stock model at init (uniform prediction)
    check_first_loss(log, cfg)
    assert re.search(r'decode\.loss_ce: \S+ .*aux\.loss_ce: \S+', log)
    state = torch.load(str(tmp_path / 'work' / 'iter_2.pth'),
                       map_location='cpu', weights_only=False)['state_dict']
    # the wrapped heads keep the stock parameter names, and trained
    assert state['decode_head.conv_seg.bias'].abs().sum() > 0
    assert state['auxiliary_head.conv_seg.bias'].abs().sum() > 0
    # gradients reached the zero-init GSF gates through the fusion
    gates = [v for k, v in state.items()
             if k.endswith('temporal.gate_conv.weight')]
    assert gates and any(g.abs().sum() > 0 for g in gates)


@pytest.mark.slow
@pytest.mark.skipif(not LITE, reason='full mmcv installed: the op exists')
def test_compiled_op_config_needs_full_mmcv_under_lite(tmp_path):
    """Under mmcv-lite a config whose head needs a compiled op stops when the
    model is built, naming the op and the fix, before any training."""
    _, shrunk = das_config_from_doc('ccnet', tmp_path)
    proc = run_tool([
        sys.executable, 'tools/train.py', shrunk, '--work-dir',
        str(tmp_path / 'work')
    ], check=False)
    assert proc.returncode != 0
    assert re.search(
        r'CrissCrossAttention needs the compiled mmcv extension.*'
        r'Install full mmcv', proc.stdout), proc.stdout[-3000:]
    assert 'Iter(train)' not in proc.stdout
