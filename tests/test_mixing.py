"""The lines of docs/mixing_das.md turn stock mmseg configs into DAS ones."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from fixtures import make_cityscapes, shrink_config
from test_configs_e2e import run_train

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
}


@pytest.mark.parametrize('name', sorted(STOCK))
def test_doc_lines_make_stock_config_das(name, tmp_path):
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
    log = run_train(shrunk, tmp_path / 'work')
    assert re.search(r'mIoU: [0-9.]+', log), log[-2000:]
    assert glob.glob(str(tmp_path / 'work' / 'iter_2.pth'))
