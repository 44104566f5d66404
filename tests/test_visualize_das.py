"""tools/visualize_das.py writes a PNG strip and a GIF with T frames."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from PIL import Image

import mmdas  # noqa: F401

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


def test_op_writes_strip_and_gif(tool, image, tmp_path):
    out = tool.main([
        image[0], '--op', 'translate_x', '--magnitude', '0.1',
        '--num-frames', '5', '--out', str(tmp_path / 'vis' / 'tx')
    ])
    strip = np.array(Image.open(out['png']))
    assert strip.shape == (30, 5 * 40 + 4 * tool.GAP, 3)
    gif = Image.open(out['gif'])
    assert gif.n_frames == 5 and gif.size == (40, 30)
    # middle frame = the image (RGB now); frame 4 is shifted 2 * 4 px right
    middle = strip[:, 2 * (40 + tool.GAP):2 * (40 + tool.GAP) + 40]
    assert (middle[10:20, 15:25] == (255, 0, 0)).all()
    last = strip[:, 4 * (40 + tool.GAP):]
    assert (last[10:20, 23:33, 0] == 255).all() and last[15, 20, 0] == 0


def test_policy_file_and_label_overlay(tool, image, tmp_path):
    policy = tmp_path / 'p.json'
    policy.write_text(json.dumps(dict(
        transforms=[dict(op='rotate', magnitude=10)], num_frames=3)))
    out = tool.main([
        image[0], '--policy', str(policy), '--label', image[1], '--out',
        str(tmp_path / 'rot.png')
    ])
    assert set(out) == {'png', 'gif', 'label_png', 'label_gif'}
    assert Image.open(out['label_gif']).n_frames == 3
    overlay = np.array(Image.open(out['label_png']))
    assert overlay.shape == (30, 3 * 40 + 2 * tool.GAP, 3)
    assert not np.array_equal(overlay, np.array(Image.open(out['png'])))


def test_bad_op_fails_with_the_policy_message(tool, image, tmp_path):
    with pytest.raises(ValueError, match="unknown DAS op 'spin'"):
        tool.main([image[0], '--op', 'spin', '--magnitude', '1', '--out',
                   str(tmp_path / 'x')])
