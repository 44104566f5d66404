"""Tiny datasets in each real dataset's folder layout, and config shrinking.

The shipped configs read the stock dataset classes from their usual roots
(``data/cityscapes``, ``data/VOCdevkit/VOC2012``, ``data/imagenet``, ...).
These writers make a few random images in exactly those layouts so that the
configs' own datasets, pipelines and evaluators run in tests.
"""
import math
import os
import os.path as osp
import re
import struct

import cv2
import numpy as np
from mmengine.config import Config


def _write(path, array):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, array), path


def _pair(rng, height, width, num_classes, ignore=True):
    """A random image and a blocky label map that matches it."""
    label = np.zeros((height, width), np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, height - 8), rng.integers(0, width - 8)
        label[y:y + rng.integers(8, height // 2 + 9),
              x:x + rng.integers(8, width // 2 + 9)] = rng.integers(
                  0, num_classes)
    if ignore:
        label[:2] = 255
    img = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
    img += (label[..., None] % 19 * 10).astype(np.uint8)
    return img, label


def make_cityscapes(root, num_train=2, num_val=1, size=(64, 128), seed=0):
    """``leftImg8bit/{split}/<city>/*_leftImg8bit.png`` and
    ``gtFine/{split}/<city>/*_gtFine_labelTrainIds.png``."""
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('val', num_val)):
        for i in range(count):
            img, label = _pair(rng, *size, num_classes=19)
            stem = f'aachen_{i:06d}_000019'
            _write(
                osp.join(root, 'leftImg8bit', split, 'aachen',
                         f'{stem}_leftImg8bit.png'), img)
            _write(
                osp.join(root, 'gtFine', split, 'aachen',
                         f'{stem}_gtFine_labelTrainIds.png'), label)
    return root


def make_voc_aug(root, num_train=2, num_aug=2, num_val=1, size=(64, 80),
                 seed=0):
    """``VOC2012/{JPEGImages, SegmentationClass, SegmentationClassAug,
    ImageSets/Segmentation/{train,aug,val}.txt}``."""
    rng = np.random.default_rng(seed)
    splits = {'train': [], 'aug': [], 'val': []}
    for split, count in (('train', num_train), ('aug', num_aug),
                         ('val', num_val)):
        for i in range(count):
            name = f'2007_{split}{i:04d}'
            img, label = _pair(rng, *size, num_classes=21)
            _write(osp.join(root, 'JPEGImages', name + '.jpg'), img)
            folder = 'SegmentationClassAug' if split == 'aug' \
                else 'SegmentationClass'
            _write(osp.join(root, folder, name + '.png'), label)
            splits[split].append(name)
    seg_sets = osp.join(root, 'ImageSets', 'Segmentation')
    os.makedirs(seg_sets, exist_ok=True)
    for split, names in splits.items():
        with open(osp.join(seg_sets, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
    return root


def make_imagenet(root, num_classes=2, per_class=2, size=48, seed=0):
    """``{train,val}/`` images with ``meta/{train,val}.txt``."""
    rng = np.random.default_rng(seed)
    for split in ('train', 'val'):
        lines = []
        for label in range(num_classes):
            for i in range(per_class):
                rel = f'n{label:08d}/img_{i}.JPEG' if split == 'train' \
                    else f'ILSVRC2012_val_{label:04d}{i:04d}.JPEG'
                img = rng.integers(0, 255, (size, size + 8, 3), np.uint8)
                img[..., label % 3] = 200
                _write(osp.join(root, split, rel), img)
                lines.append(f'{rel} {label}')
        os.makedirs(osp.join(root, 'meta'), exist_ok=True)
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


def make_class_folders(root, classes=('airplane', 'automobile'), per_class=2,
                       size=32, seed=0):
    """``{train,test}/<class>/*.png`` for mmpretrain's ``CustomDataset``
    (CIFAR10 checks md5 sums, so tests cannot fake its pickles)."""
    rng = np.random.default_rng(seed)
    for split in ('train', 'test'):
        for label, name in enumerate(classes):
            for i in range(per_class):
                img = rng.integers(0, 255, (size, size, 3), np.uint8)
                img[..., label % 3] = 220
                _write(osp.join(root, split, name, f'{i}.png'), img)
    return root


def make_fashion_mnist(root, num_train=4, num_test=4, seed=0):
    """The four uncompressed IDX files mmpretrain's ``FashionMNIST`` reads."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for prefix, count in (('train', num_train), ('t10k', num_test)):
        images = rng.integers(0, 255, (count, 28, 28), np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        with open(osp.join(root, f'{prefix}-images-idx3-ubyte'), 'wb') as f:
            f.write(struct.pack('>IIII', 2051, count, 28, 28))
            f.write(images.tobytes())
        with open(osp.join(root, f'{prefix}-labels-idx1-ubyte'), 'wb') as f:
            f.write(struct.pack('>II', 2049, count))
            f.write(labels.tobytes())
    return root


# ---------------------------------------------------------------------------
# config shrinking


def _datasets(loader_cfg):
    dataset = loader_cfg['dataset']
    if dataset.get('type') == 'ConcatDataset':
        return list(dataset['datasets'])
    return [dataset]


def _shrink_pipeline(pipeline, crop, scale):
    for step in pipeline:
        if 'crop_size' in step:
            step['crop_size'] = crop if isinstance(step['crop_size'],
                                                   (tuple, list)) else crop[0]
        if 'scale' in step:
            step['scale'] = scale if isinstance(step['scale'],
                                                (tuple, list)) else scale[1]
        if step.get('type') in ('Pad', 'DASPad'):
            step['size'] = crop
        if step.get('type') == 'RandomResizedCrop':
            step['scale'] = crop[0]


def shrink_config(cfg: Config, data_root, crop=(64, 64), scale=(128, 64),
                  iters=2, batch_size=2):
    """Point ``cfg`` at a fixture and make it train ``iters`` steps on tiny
    crops with one process: small crops/scales, ``num_workers=0``, val and a
    checkpoint at the end."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = batch_size if key == 'train_dataloader' else 1
        for dataset in _datasets(loader):
            dataset['data_root'] = data_root
            _shrink_pipeline(dataset['pipeline'], crop, scale)
    if cfg.model.get('pretrained'):
        # the documented offline override: no ImageNet download in tests
        cfg.model.pretrained = None
    preprocessor = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor')
    if preprocessor is not None and 'size' in preprocessor:
        preprocessor['size'] = crop
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop' or 'max_iters' in \
            cfg.train_cfg:
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters
        cfg.default_hooks.checkpoint.interval = iters
        cfg.param_scheduler = [
            dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                 end=iters, by_epoch=False)
        ]
    else:
        cfg.train_cfg.max_epochs = 1
        cfg.train_cfg.val_interval = 1
        cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg = dict(
        cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
        dist_cfg=dict(backend='gloo'))
    cfg.randomness = dict(seed=0)
    return cfg


def initial_loss(cfg: Config) -> float:
    """Sum over the model's heads of ``loss_weight * ln(num_classes)``: the
    cross-entropy of a uniform prediction, a fresh model's first loss."""
    total = 0.0
    for key in ('decode_head', 'auxiliary_head', 'head'):
        heads = cfg.model.get(key)
        for head in heads if isinstance(heads, list) else [heads]:
            if not head:
                continue
            loss = head.get('loss_decode') or head.get('loss') or {}
            total += loss.get('loss_weight', 1.0) * math.log(
                head['num_classes'])
    return total


def check_first_loss(log: str, cfg: Config) -> None:
    """The first logged training loss of a fresh model is
    :func:`initial_loss` (within 20 %), and the sum of the logged heads'
    terms: a fusion that summed the T frames' logits, or lost a head, is
    far off."""
    first = re.search(r'(?:Iter|Epoch)\(train\).*? loss: (\S+)(.*)', log)
    assert first, log[-3000:]
    expected = initial_loss(cfg)
    assert abs(float(first[1]) - expected) < 0.2 * expected, (first[1],
                                                              expected)
    parts = [float(v) for v in re.findall(r'loss_\w+: (\S+)', first[2])]
    if parts:
        assert abs(float(first[1]) - sum(parts)) < 2e-4, (first[0], parts)
