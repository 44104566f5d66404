"""Bad labels, bad numbers and bad files: each fails naming what is wrong,
or (255 labels) trains as documented (issue 19)."""
import glob
import os
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SEG_CONFIG, run_tool, seg_options
from mmdas.datasets.embedded import make_embedded_segmentation

TRAIN = [sys.executable, osp.join('tools', 'train.py')]
TEST = [sys.executable, osp.join('tools', 'test.py')]


# ---- 1. ignore_index with class_weight ------------------------------------
@pytest.mark.parametrize('avg_non_ignore', [False, True])
@pytest.mark.parametrize('class_weight', [None, [0.3, 1.0, 2.0]])
def test_ignored_pixels_take_no_part_in_the_loss(class_weight,
                                                 avg_non_ignore):
    from mmseg.models.losses import CrossEntropyLoss
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    label = torch.randint(0, 3, (2, 4, 5))
    label[:, 0] = 255  # a padded strip, as a crop of a non-square image
    loss = CrossEntropyLoss(
        class_weight=class_weight, avg_non_ignore=avg_non_ignore)(
            logits, label, ignore_index=255)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[:, :, 0].abs().max() == 0  # ignored: no gradient
    assert logits.grad[:, :, 1:].abs().max() > 0
    weight = torch.tensor(class_weight or [1.0] * 3)
    kept = label != 255
    per_pixel = F.cross_entropy(logits, label, weight=weight,
                                ignore_index=255, reduction='none')
    denominator = weight[label[kept]].sum() + (0 if avg_non_ignore else
                                               (~kept).sum())
    torch.testing.assert_close(loss, per_pixel.sum() / denominator)
    if avg_non_ignore:  # PyTorch's own weighted mean over kept pixels
        torch.testing.assert_close(
            loss, F.cross_entropy(logits, label, weight=weight,
                                  ignore_index=255))


def test_unit_class_weight_equals_no_class_weight():
    from mmseg.models.losses import CrossEntropyLoss
    logits = torch.randn(1, 4, 6, 6)
    label = torch.randint(0, 4, (1, 6, 6))
    label[0, :, :2] = 255
    for avg_non_ignore in (False, True):
        plain = CrossEntropyLoss(avg_non_ignore=avg_non_ignore)(
            logits, label, ignore_index=255)
        unit = CrossEntropyLoss(class_weight=[1.0] * 4,
                                avg_non_ignore=avg_non_ignore)(
                                    logits, label, ignore_index=255)
        torch.testing.assert_close(unit, plain)


def test_mmseg_cross_entropy_without_the_fix_fails_on_255():
    """The upstream bug the compat fix exists for (mmseg#3734)."""
    from mmseg.models.losses import cross_entropy_loss
    original = cross_entropy_loss.cross_entropy.__wrapped__
    logits = torch.randn(1, 3, 2, 2)
    label = torch.tensor([[[0, 1], [2, 255]]])
    with pytest.raises(IndexError, match='255'):
        original(logits, label, class_weight=torch.ones(3),
                 ignore_index=255)


def test_label_out_of_range_still_fails_in_torch():
    from mmseg.models.losses import CrossEntropyLoss
    label = torch.tensor([[[0, 1], [7, 255]]])
    with pytest.raises(IndexError, match='7'):
        CrossEntropyLoss(class_weight=[1.0] * 3)(
            torch.randn(1, 3, 2, 2), label, ignore_index=255)


@pytest.fixture(scope='module')
def non_square_seg_root(tmp_path_factory):
    """4 train / 2 val 48x64 images whose labels hold 255 strips."""
    root = str(tmp_path_factory.mktemp('non_square'))
    make_embedded_segmentation(root, num_train=4, num_val=2, canvas=64,
                               items_per_image=2, seed=1)
    for path in glob.glob(osp.join(root, '*', '*', '*.png')):
        flag = cv2.IMREAD_UNCHANGED
        array = cv2.imread(path, flag)[:48]
        if '/ann_dir/' in path:
            array[:3] = 255
        assert cv2.imwrite(path, array)
    return root


def test_demo_config_trains_on_255_labels_and_padded_crops(
        non_square_seg_root, tmp_path):
    # 48x64 images in 64x64 crops: the data preprocessor pads the labels
    # with 255; the config's losses use class_weight
    out = run_tool(TRAIN + [
        SEG_CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
        *seg_options(non_square_seg_root, max_iters=2),
        'train_dataloader.dataset.pipeline.2.ratio_range=(1.0,1.0)'
    ]).stdout
    losses = [float(v) for v in re.findall(
        r'Iter\(train\).*? loss: ([0-9.naninf]+)', out)]
    assert len(losses) == 2 and all(np.isfinite(losses)), out[-3000:]
    assert osp.isfile(osp.join(tmp_path, 'iter_2.pth'))


# ---- 2. 16-bit labels -----------------------------------------------------
def _load_label(img_path, label_path, **kwargs):
    from mmdas.datasets.transforms import LoadAnnotationsChecked
    results = dict(img_path=img_path, seg_map_path=label_path,
                   reduce_zero_label=False, seg_fields=[],
                   ori_shape=(8, 8))
    return LoadAnnotationsChecked(num_classes=11, **kwargs)(results)


def test_16_bit_label_with_ids_above_255_names_the_file(tmp_path):
    label = np.zeros((8, 8), np.uint16)
    label[2:4, 2:4] = 266  # read as 10 after mmseg's uint8 cast
    path = str(tmp_path / 'wide.png')
    assert cv2.imwrite(path, label)
    with pytest.raises(ValueError, match=r'wide\.png: label values 0\.\.266 '
                       r'do not fit uint8.*266 as 10'):
        _load_label('img.png', path)


def test_16_bit_label_within_uint8_loads_as_8_bit(tmp_path):
    label = np.zeros((8, 8), np.uint16)
    label[1, 1], label[2, 2] = 10, 255
    wide, narrow = str(tmp_path / 'wide.png'), str(tmp_path / 'narrow.png')
    assert cv2.imwrite(wide, label)
    assert cv2.imwrite(narrow, label.astype(np.uint8))
    a = _load_label('img.png', wide)['gt_seg_map']
    b = _load_label('img.png', narrow)['gt_seg_map']
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    assert a[1, 1] == 10 and a[2, 2] == 255


def test_check_dataset_reports_16_bit_label(tiny_seg_root, tmp_path):
    import shutil
    root = str(tmp_path / 'data')
    shutil.copytree(tiny_seg_root, root)
    victim = sorted(glob.glob(osp.join(root, 'ann_dir', 'train', '*.png')))[0]
    label = cv2.imread(victim, cv2.IMREAD_UNCHANGED).astype(np.uint16)
    label[0, 0] = 266
    assert cv2.imwrite(victim, label)
    out = run_tool([sys.executable, 'tools/check_dataset.py', SEG_CONFIG,
                    '--no-progress', '--splits', 'train', '--cfg-options',
                    f'train_dataloader.dataset.data_root={root}'],
                   check=False)
    assert out.returncode == 1
    assert f'{victim}: label values 0..266 do not fit uint8' in out.stdout
