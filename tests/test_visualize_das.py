"""tools/visualize_das.py and the drawing helpers of mmdas.visualization:
frames that follow the policy, titled and upsampled pictures, GIFs."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from PIL import Image

import mmdas  # noqa: F401
from mmdas.policy import DASPolicy
from mmdas.visualization import (DPI, PANEL_INCHES, colour_label,
                                 describe_frame, frame_titles, render_panels)

TOOL = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools',
                'visualize_das.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('visualize_das', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def image(tmp_path):
    img = np.zeros((30, 40, 3), np.uint8)
    img[10:20, 15:25] = (0, 0, 255)  # red square (BGR)
    path = tmp_path / 'img.png'
    cv2.imwrite(str(path), img)
    label = np.zeros((30, 40), np.uint8)
    label[10:20, 15:25] = 1
    lpath = tmp_path / 'label.png'
    Image.fromarray(label).save(lpath)
    return str(path), str(lpath)


def test_frames_follow_the_policy(tool, image):
    img = cv2.imread(image[0])
    policy = tool.DASPolicy.from_dict(
        dict(transforms=[dict(op='translate_x', magnitude=0.1)],
             num_frames=5))
    frames, labels = tool.video_frames(img, policy)
    assert len(frames) == 5 and labels == []
    # middle frame = the image (RGB now); frame 4 is shifted 2 * 4 px right
    assert (frames[2][10:20, 15:25] == (255, 0, 0)).all()
    assert (frames[4][10:20, 23:33, 0] == 255).all()
    assert frames[4][15, 20, 0] == 0


def test_op_writes_titled_png_and_gif(tool, image, tmp_path):
    out = tool.main([
        image[0], '--op', 'translate_x', '--magnitude', '0.1',
        '--num-frames', '5', '--out', str(tmp_path / 'vis' / 'tx')
    ])
    assert out['png'] == str(tmp_path / 'vis' / 'tx.png')
    picture = np.array(Image.open(out['png']))
    # five 40x30 frames upsampled to readable panels, titles above them
    assert picture.shape[0] >= 0.9 * PANEL_INCHES * DPI
    assert picture.shape[1] >= 5 * 0.8 * PANEL_INCHES * DPI
    gif = Image.open(out['gif'])
    assert gif.n_frames == 5 and gif.size[1] >= 2 * 30


def test_policy_file_and_label_maps(tool, image, tmp_path):
    policy = tmp_path / 'p.json'
    policy.write_text(json.dumps(dict(
        transforms=[dict(op='rotate', magnitude=10)], num_frames=3)))
    out = tool.main([
        image[0], '--policy', str(policy), '--label', image[1], '--out',
        str(tmp_path / 'rot.png')
    ])
    assert set(out) == {'png', 'gif', 'label_png', 'label_gif'}
    assert Image.open(out['label_gif']).n_frames == 3
    frames_only = np.array(Image.open(out['png']))
    with_labels = np.array(Image.open(out['label_png']))
    # a second row of label maps under the frames
    assert with_labels.shape[0] > 1.8 * frames_only.shape[0]


def test_frame_titles_name_frame_offset_and_transform():
    policy = DASPolicy([dict(op='rotate', magnitude=8.0)], num_frames=4)
    assert frame_titles(4, policy) == [
        'frame 0 (offset -2)\nrotate -16°',
        'frame 1 (offset -1)\nrotate -8°',
        'frame 2 (offset +0)\nthe image',
        'frame 3 (offset +1)\nrotate +8°',
    ]
    moves = [dict(op='translate_x', magnitude=0.05),
             dict(op='scale', magnitude=1.1)]
    assert describe_frame(moves, -2) == 'shift x -10% width, zoom ×0.826'
    forward = DASPolicy([dict(op='shear_y', magnitude=0.1)], num_frames=2,
                        profile='forward')
    assert frame_titles(2, forward) == [
        'frame 0 (offset +0)\nthe image', 'frame 1 (offset +1)\nshear y +0.1'
    ]
    assert frame_titles(3, what='searched mix')[0] == \
        'frame 0 (offset -1)\nsearched mix'


def test_render_panels_upsamples_and_adds_a_legend():
    tile = np.zeros((20, 20, 3), np.uint8)
    tile[5:15, 5:15] = (255, 0, 0)
    plain = render_panels([[(tile, 'a'), (tile, 'b')]])
    assert plain.dtype == np.uint8 and plain.ndim == 3
    # each 20-pixel tile is drawn at least 4 times larger
    assert plain.shape[0] >= 4 * 20 and plain.shape[1] >= 2 * 4 * 20
    # pure red survives nearest-neighbour upsampling over a large area
    assert (plain == (255, 0, 0)).all(-1).sum() > 4 * 100
    legend = [('background', np.array([0, 0, 0])),
              ('digit', np.array([0, 200, 0]))]
    with_legend = render_panels([[(tile, 'a'), (tile, 'b')]], legend)
    assert with_legend.shape[1] > plain.shape[1]
    assert (with_legend == (0, 200, 0)).all(-1).any()
    # a short last row leaves room: the legend goes there, no extra column
    two_rows = render_panels([[(tile, 'a'), (tile, 'b')], [(tile, 'c')]],
                             legend)
    assert two_rows.shape[1] == plain.shape[1]
    assert (two_rows == (0, 200, 0)).all(-1).any()


def test_colour_label_marks_ignored_pixels_white():
    label = np.array([[0, 1], [255, 2]])
    colours = np.array([[0, 0, 0], [10, 20, 30], [40, 50, 60]], np.uint8)
    out = colour_label(label, colours)
    assert out.tolist() == [[[0, 0, 0], [10, 20, 30]],
                            [[255, 255, 255], [40, 50, 60]]]


def test_bad_op_fails_with_the_policy_message(tool, image, tmp_path):
    with pytest.raises(ValueError, match="unknown DAS op 'spin'"):
        tool.main([image[0], '--op', 'spin', '--magnitude', '1', '--out',
                   str(tmp_path / 'x')])


def test_prediction_views_of_a_das_segmentor():
    """The demo's DAS model (untrained): its frames, titles and pictures."""
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from mmdas.datasets.embedded import SEG_CLASSES, SEG_PALETTE
    from mmdas.visualization import (das_prediction_views,
                                     prediction_gif_frames,
                                     prediction_picture)

    cfg = Config.fromfile(
        osp.join(osp.dirname(TOOL), '..', 'configs',
                 'das_deeplabv3plus_r18_embedded.py'))
    init_default_scope('mmseg')
    cfg.model.data_preprocessor.size = (48, 48)
    model = MODELS.build(cfg.model)
    model.dataset_meta = dict(classes=SEG_CLASSES, palette=SEG_PALETTE)
    bgr = np.random.RandomState(0).randint(0, 256, (48, 48, 3), np.uint8)
    sample = SegDataSample(
        gt_sem_seg=PixelData(data=torch.zeros(1, 48, 48, dtype=torch.long)))
    sample.set_metainfo(dict(img_shape=(48, 48), ori_shape=(48, 48)))
    batch = pseudo_collate([
        dict(inputs=torch.from_numpy(bgr).permute(2, 0, 1).contiguous(),
             data_samples=sample)
    ])
    views = das_prediction_views(model, batch)

    num_frames = cfg.num_frames
    assert len(views['frames']) == num_frames
    assert views['frame_titles'] == frame_titles(
        num_frames, model.data_preprocessor.policy)
    middle = num_frames // 2
    assert views['frame_titles'][middle].endswith('the image')
    # the reference frame is the input image, in RGB, unchanged
    assert views['image'] is views['frames'][middle]
    assert np.abs(views['image'].astype(int) - bgr[..., ::-1]).max() <= 1
    assert not np.array_equal(views['frames'][0], views['image'])
    assert views['label'].shape == views['pred'].shape == (48, 48)
    assert views['classes'] == list(SEG_CLASSES)
    assert views['palette'].tolist() == SEG_PALETTE

    picture = prediction_picture(views)
    assert picture.ndim == 3 and picture.shape[0] >= 2 * PANEL_INCHES * DPI
    gif = prediction_gif_frames(views)
    assert len(gif) == num_frames
    assert len({g.shape for g in gif}) == 1
