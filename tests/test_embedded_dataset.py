"""The embedded MNIST-digits data sets: layout, determinism, labels, and
loading through the stock mmseg / mmpretrain dataset classes."""
import filecmp
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdas.datasets import embedded
from mmdas.datasets.embedded import (MARKER, SEG_CLASSES,
                                     ensure_embedded_dataset,
                                     load_mnist_digits,
                                     make_embedded_classification,
                                     make_embedded_segmentation)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG_DATA_CFG = osp.join(REPO, 'configs', '_base_', 'datasets',
                        'embedded_digits.py')
SMALL = dict(num_train=6, num_val=3, canvas=64, items_per_image=3, seed=1)


@pytest.fixture(scope='module')
def seg_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('seg'))
    make_embedded_segmentation(root, **SMALL)
    return root


def _files(folder):
    return sorted(os.listdir(folder))


def test_mnist_digits_are_real():
    images, labels = load_mnist_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    # real handwriting: mostly black with bright strokes, never blank
    assert images.reshape(5000, -1).max(1).min() > 200
    assert 0.1 < (images > 128).mean() < 0.25


def test_train_and_val_digit_pools_are_disjoint():
    _, labels = load_mnist_digits()
    train = embedded.digit_pool(labels, 'train')
    val = embedded.digit_pool(labels, 'val')
    assert len(train) == 4000 and len(val) == 1000
    assert not set(train.tolist()) & set(val.tolist())
    assert np.bincount(labels[val]).tolist() == [100] * 10


def test_segmentation_layout(seg_root):
    for split, num in (('train', 6), ('val', 3)):
        names = [f'{i:06d}.png' for i in range(num)]
        assert _files(osp.join(seg_root, 'img_dir', split)) == names
        assert _files(osp.join(seg_root, 'ann_dir', split)) == names
        for name in names:
            img = cv2.imread(
                osp.join(seg_root, 'img_dir', split, name),
                cv2.IMREAD_UNCHANGED)
            ann = cv2.imread(
                osp.join(seg_root, 'ann_dir', split, name),
                cv2.IMREAD_UNCHANGED)
            assert img.shape == (64, 64, 3) and img.dtype == np.uint8
            assert ann.shape == (64, 64) and ann.dtype == np.uint8


def test_labels_in_range_and_digits_present(seg_root):
    seen = set()
    for split in ('train', 'val'):
        folder = osp.join(seg_root, 'ann_dir', split)
        for name in _files(folder):
            ann = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
            values = set(np.unique(ann).tolist())
            assert values <= set(range(11))
            assert 0 in values and len(values) >= 2  # background + a digit
            fg = (ann > 0).mean()
            assert 0.005 < fg < 0.5
            seen |= values
    assert len(seen) >= 5  # several digit classes across 9 small images


def test_every_stroke_pixel_is_labelled():
    images, labels = load_mnist_digits()
    pool = embedded.digit_pool(labels, 'train')
    rng = np.random.default_rng(3)
    for _ in range(5):
        image, label, placements = embedded.compose_canvas(
            rng, images, labels, pool, canvas=96, items=3)
        expected = np.zeros_like(label)
        for k, y, x, patch in placements:
            side = patch.shape[0]
            window = expected[y:y + side, x:x + side]
            window[patch > embedded.STROKE_THRESHOLD] = labels[k] + 1
            # the warped digit is the real MNIST digit, not a blob
            assert patch.max() > 200 and (patch > 128).mean() < 0.5
        np.testing.assert_array_equal(label, expected)
        assert label.any()
        # strokes are drawn in a colour that differs from the background
        fg = image[label > 0].astype(float).mean(0)
        bg = image[label == 0].astype(float).mean(0)
        assert np.abs(fg - bg).sum() > 30


def test_same_seed_same_bytes_other_seed_differs(tmp_path, seg_root):
    again = str(tmp_path / 'again')
    make_embedded_segmentation(again, **SMALL)
    other = str(tmp_path / 'other')
    make_embedded_segmentation(other, **dict(SMALL, seed=2))
    for sub in ('img_dir/train', 'img_dir/val', 'ann_dir/train',
                'ann_dir/val'):
        names = _files(osp.join(seg_root, sub))
        match, mismatch, errors = filecmp.cmpfiles(
            osp.join(seg_root, sub), osp.join(again, sub), names,
            shallow=False)
        assert match == names and not mismatch and not errors
        _, mismatch, _ = filecmp.cmpfiles(
            osp.join(seg_root, sub), osp.join(other, sub), names,
            shallow=False)
        assert mismatch == names


def test_val_split_does_not_depend_on_num_train(tmp_path, seg_root):
    more = str(tmp_path / 'more')
    make_embedded_segmentation(more, **dict(SMALL, num_train=2))
    names = _files(osp.join(seg_root, 'img_dir/val'))
    match, _, _ = filecmp.cmpfiles(
        osp.join(seg_root, 'img_dir/val'), osp.join(more, 'img_dir/val'),
        names, shallow=False)
    assert match == names


def test_ensure_generates_only_when_missing_or_changed(tmp_path):
    root = str(tmp_path / 'data')
    kwargs = dict(num_train=2, num_val=1, canvas=48)
    assert ensure_embedded_dataset(root, **kwargs) is True
    first = osp.join(root, 'img_dir', 'train', '000000.png')
    stamp = os.stat(first).st_mtime_ns
    # defaults given explicitly are the same request
    assert ensure_embedded_dataset(
        root, task='seg', seed=0, items_per_image=4, **kwargs) is False
    assert os.stat(first).st_mtime_ns == stamp
    # other parameters: regenerated, and old files are gone
    assert ensure_embedded_dataset(
        root, **dict(kwargs, num_train=1)) is True
    assert _files(osp.join(root, 'img_dir', 'train')) == ['000000.png']
    # an interrupted generation leaves no marker, so it is redone
    os.remove(osp.join(root, MARKER))
    assert ensure_embedded_dataset(
        root, **dict(kwargs, num_train=1)) is True
    with pytest.raises(ValueError, match='task'):
        ensure_embedded_dataset(root, task='det')


def _seg_dataset_cfg(root, split):
    cfg = Config.fromfile(SEG_DATA_CFG)
    dataset = cfg[f'{split}_dataloader'].dataset
    dataset.data_root = root
    # the fixture canvas is 64, the config's 128
    if split == 'train':
        assert dataset.pipeline[2].type == 'RandomResize'
        dataset.pipeline[2].scale = (64, 64)
        dataset.pipeline[3].crop_size = (64, 64)
    else:
        assert dataset.pipeline[1].type == 'Resize'
        dataset.pipeline[1].scale = (64, 64)
    return cfg, dataset


def test_stock_mmseg_dataset_reads_it(seg_root):
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    cfg, dataset_cfg = _seg_dataset_cfg(seg_root, 'val')
    assert dataset_cfg.type == 'BaseSegDataset'
    assert tuple(cfg.metainfo.classes) == SEG_CLASSES
    assert len(cfg.metainfo.palette) == len(SEG_CLASSES) == 11
    dataset = DATASETS.build(dataset_cfg)
    assert type(dataset).__name__ == 'BaseSegDataset'
    assert len(dataset) == 3
    assert dataset.metainfo['classes'] == SEG_CLASSES
    sample = dataset[0]
    img = sample['inputs']
    gt = sample['data_samples'].gt_sem_seg.data
    assert tuple(img.shape) == (3, 64, 64)
    assert tuple(gt.shape) == (1, 64, 64)
    ann = cv2.imread(
        osp.join(seg_root, 'ann_dir', 'val', '000000.png'),
        cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(gt[0].numpy(), ann)

    _, train_cfg = _seg_dataset_cfg(seg_root, 'train')
    train = DATASETS.build(train_cfg)
    assert len(train) == 6
    for i in range(len(train)):
        sample = train[i]
        gt = sample['data_samples'].gt_sem_seg.data
        # RandomResize may shrink below the crop; image and map stay aligned
        h, w = sample['inputs'].shape[1:]
        assert sample['inputs'].shape[0] == 3 and 48 <= min(h, w)
        assert max(h, w) <= 64 and tuple(gt.shape) == (1, h, w)
        assert int(gt.max()) <= 10


def test_classification_set_and_stock_custom_dataset(tmp_path):
    root = str(tmp_path / 'cls')
    counts = make_embedded_classification(
        root, num_train=20, num_val=10, size=32, seed=0)
    assert counts == dict(train=20, val=10)
    for split, per_class in (('train', 2), ('val', 1)):
        assert _files(osp.join(root, split)) == [str(d) for d in range(10)]
        for d in range(10):
            assert len(os.listdir(osp.join(root, split, str(d)))) == per_class
    again = str(tmp_path / 'again')
    make_embedded_classification(again, num_train=20, num_val=10, seed=0)
    with open(osp.join(root, 'train', '3', '000003.png'), 'rb') as a, \
            open(osp.join(again, 'train', '3', '000003.png'), 'rb') as b:
        assert a.read() == b.read()

    init_default_scope('mmpretrain')
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(
        dict(
            type='CustomDataset',
            data_root=root,
            data_prefix='val',
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='PackInputs')
            ]))
    assert len(dataset) == 10
    assert dataset.CLASSES == tuple(str(d) for d in range(10))
    labels = sorted(int(dataset[i]['data_samples'].gt_label)
                    for i in range(10))
    assert labels == list(range(10))
    assert tuple(dataset[0]['inputs'].shape) == (3, 32, 32)


def test_separate_digits_never_touch_and_keep_every_stroke():
    images, labels = load_mnist_digits()
    pool = embedded.digit_pool(labels, 'train')
    rng = np.random.default_rng(5)
    gap = embedded.SEPARATION
    kernel = np.ones((2 * gap + 1, ) * 2, np.uint8)
    placed = 0
    for _ in range(20):
        _, label, placements = embedded.compose_canvas(
            rng, images, labels, pool, canvas=96, items=4, separate=True)
        inks = []
        for k, y, x, patch in placements:
            ink = np.zeros(label.shape, np.uint8)
            ink[y:y + patch.shape[0], x:x + patch.shape[1]] = patch > 0
            # nothing drawn later hides this digit: every stroke pixel
            # keeps its own label
            strokes = np.zeros(label.shape, bool)
            strokes[y:y + patch.shape[0], x:x + patch.shape[1]] = \
                patch > embedded.STROKE_THRESHOLD
            assert (label[strokes] == labels[k] + 1).all()
            inks.append(ink)
        for i in range(len(inks)):
            grown = cv2.dilate(inks[i], kernel).astype(bool)
            for j in range(i + 1, len(inks)):
                assert not (grown & inks[j].astype(bool)).any()
        placed += len(placements)
    # room is found for about half the digits asked (20 canvases x 4)
    assert placed >= 40
    # without separation, the same draws overlap somewhere
    rng = np.random.default_rng(5)
    hidden = 0
    for _ in range(20):
        _, label, placements = embedded.compose_canvas(
            rng, images, labels, pool, canvas=96, items=4)
        for k, y, x, patch in placements:
            window = label[y:y + patch.shape[0], x:x + patch.shape[1]]
            hidden += (window[patch > embedded.STROKE_THRESHOLD]
                       != labels[k] + 1).sum()
    assert hidden > 0


@pytest.mark.parametrize('scale_range', [(0.6, 0.3), (0.0, 0.5), (0.5, 1.2)])
def test_bad_scale_range_names_the_field(tmp_path, scale_range):
    with pytest.raises(ValueError, match=r'scale_range=.*0 < low <= high'):
        make_embedded_segmentation(
            str(tmp_path / 'bad'), num_train=1, num_val=1, canvas=48,
            scale_range=scale_range)
