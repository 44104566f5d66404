"""See what a DAS policy does to an image before training with it.

Writes the T frames as one titled PNG (each frame named with its index, step
offset and the transform it shows) and as an animated GIF; with ``--label``
also the warped label maps blended over the frames (pixels that came from
outside the image show the ignore index, uncoloured), with a class legend.

Examples::

    python tools/visualize_das.py demo.jpg --op rotate --magnitude 5 \\
        --num-frames 8 --out work_dirs/rotate
    python tools/visualize_das.py demo.jpg --policy my_policy.json \\
        --label demo_label.png --out work_dirs/policy.png

``--out PATH`` names the PNG (``.png`` is added if missing); the GIF goes
next to it with the suffix ``.gif`` and the label PNG and GIF get
``_label`` before the suffix.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mmdas.datasets.transforms import DASImageToVideo  # noqa: E402
from mmdas.policy import DASPolicy  # noqa: E402
from mmdas.visualization import (colour_label, frame_titles,  # noqa: E402
                                 palette, render_panels, save_gif)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the frames of a DAS policy as a titled PNG and an '
        'animated GIF')
    parser.add_argument('image', help='input image')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--policy', help='policy JSON file')
    source.add_argument('--op', help='a single op, e.g. rotate')
    parser.add_argument(
        '--magnitude', type=float, help='per-step magnitude of --op')
    parser.add_argument(
        '--num-frames', type=int, default=None,
        help='T (default: the policy file\'s, else 8)')
    parser.add_argument(
        '--profile', default=None,
        help="'symmetric' (default), 'pingpong' (the authors' code) or "
        "'forward'")
    parser.add_argument('--label', help='label map (PNG of class indices)')
    parser.add_argument(
        '--ignore-index', type=int, default=255,
        help='label of pixels from outside the image')
    parser.add_argument(
        '--duration', type=int, default=400, help='GIF frame time in ms')
    parser.add_argument('--out', required=True, help='output PNG path')
    args = parser.parse_args(argv)
    if args.op is not None and args.magnitude is None \
            and args.op != 'identity':
        parser.error('--op needs --magnitude')
    return args


def build_policy(args) -> DASPolicy:
    if args.policy:
        cfg = DASPolicy.load(args.policy).to_dict()
    else:
        cfg = dict(
            transforms=[dict(op=args.op, magnitude=args.magnitude or 0.0)])
    if args.num_frames is not None:
        cfg['num_frames'] = args.num_frames
    if args.profile is not None:
        cfg['profile'] = args.profile
    return DASPolicy.from_dict(cfg, field='policy')


def write(rows: List[List[np.ndarray]], titles: List[List[str]], png: str,
          duration: int, what: str, legend=None) -> Dict[str, str]:
    """Rows of frames as one titled PNG, and an animated GIF in which frame
    ``t`` shows column ``t`` of every row."""
    gif = osp.splitext(png)[0] + '.gif'
    panels = [list(zip(row, text)) for row, text in zip(rows, titles)]
    Image.fromarray(render_panels(panels, legend, title=what)).save(png)
    save_gif([
        render_panels([[row[t] for row in panels]], legend, title=what)
        for t in range(len(rows[0]))
    ], gif, duration)
    return dict(png=png, gif=gif)


def video_frames(img: np.ndarray,
                 policy: DASPolicy,
                 label: Optional[np.ndarray] = None,
                 ignore_index: int = 255) -> Tuple[List[np.ndarray], list]:
    """The policy's frames of a BGR image, and its warped label maps.

    Returns:
        tuple: RGB ``uint8`` frames, and the ``[H, W]`` label map of each
        frame (an empty list without ``label``).
    """
    results = dict(img=img)
    if label is not None:
        results['gt_seg_map'] = label
    results = DASImageToVideo(policy, ignore_index=ignore_index)(results)
    h, w = img.shape[:2]
    video = results['img'].reshape(h, w, policy.num_frames,
                                   3).transpose(2, 0, 1, 3)
    # BGR (OpenCV) to RGB for PIL
    frames = [np.clip(f[..., ::-1], 0, 255).round().astype(np.uint8)
              for f in video]
    return frames, list(results.get('gt_seg_map_frames', []))


def main(argv: Optional[list] = None) -> Dict[str, str]:
    args = parse_args(argv)
    policy = build_policy(args)
    img = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read image {args.image!r}')
    label = None
    if args.label:
        label = np.array(Image.open(args.label))
        if label.shape != img.shape[:2]:
            raise ValueError(f'label map {label.shape} and image '
                             f'{img.shape[:2]} differ in size')
    frames, labels = video_frames(img, policy, label, args.ignore_index)
    t = policy.num_frames

    png = args.out if args.out.lower().endswith('.png') else args.out + '.png'
    os.makedirs(osp.dirname(osp.abspath(png)), exist_ok=True)
    titles = frame_titles(t, policy)
    what = f'DAS video of {osp.basename(args.image)}: {t} frames'
    written = write([frames], [titles], png, args.duration, what)
    if args.label:
        colours = palette()
        present = np.unique(label[label != args.ignore_index])
        legend = [(f'class {c}', colours[c]) for c in present] + [
            (f'ignored ({args.ignore_index}, from outside)', (255, ) * 3)
        ]
        maps = [
            colour_label(lab, colours, args.ignore_index) for lab in labels
        ]
        stem, ext = osp.splitext(png)
        extra = write([frames, maps],
                      [titles, [f'label of frame {i}' for i in range(t)]],
                      f'{stem}_label{ext}', args.duration,
                      what + ' and their warped labels', legend)
        written.update(label_png=extra['png'], label_gif=extra['gif'])
    print(f'{policy}: ' + ', '.join(written.values()))
    return written


if __name__ == '__main__':
    main()
