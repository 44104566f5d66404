"""Loading transforms that name the file when the data is wrong.

mmcv's ``LoadImageFromFile`` lets a decoder error through that names no file
(a zero-byte PNG gives OpenCV's ``!buf.empty()``), and mmseg's
``LoadAnnotations`` accepts a label of another size than its image, which
the resize and crop transforms then silently stretch to fit. These
subclasses load exactly as their parents do, and raise an error naming the
file instead:

* :class:`LoadImageFromFileChecked`: a missing file or one that does not
  decode raises ``OSError: <path>: ...``, one smaller than ``min_size``
  (8: a 1x1 image would leave mmseg a 0-d label) ``ValueError``;
* :class:`LoadAnnotationsChecked`: the same for the label, and a label that
  is not single-channel, not the size of its image (``ori_shape``, so it may
  follow ``Resize`` as in mmseg's test pipelines) or, if ``num_classes`` is
  given, holds ids outside ``[0, num_classes)`` other than ``ignore_index``
  raises ``ValueError: <path>: ...``; so does a 16-bit label with ids above
  255, which mmseg's uint8 cast would wrap (266 read as 10).

They are drop-in replacements in any pipeline (``type=
'LoadImageFromFileChecked'``, ``type='LoadAnnotationsChecked'``); see
``docs/mixing_das.md``.
"""
from typing import Optional

import mmcv
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations

from mmdas.registry import TRANSFORMS
from ..checks import (MIN_IMAGE_SIZE, image_size_problem,
                      label_depth_problem, label_value_lut,
                      seg_label_problems, wider_than_8_bits)


def _file_error(path: str, error: Exception) -> OSError:
    if isinstance(error, FileNotFoundError):
        return FileNotFoundError(f'{path}: missing file')
    return OSError(f'{path}: does not decode ({type(error).__name__}: '
                   f'{str(error).strip()[:200]})')


class _LabelError(ValueError):
    """A label that decodes but is wrong; its message names the file."""


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` whose errors name the file.

    With ``ignore_empty=True`` an unreadable file still yields ``None`` as
    in the parent.

    Args:
        min_size (int): Smallest height and width accepted, the network's
            output stride. Defaults to
            :data:`~mmdas.datasets.checks.MIN_IMAGE_SIZE` (8).
        **kwargs: Arguments of mmcv's ``LoadImageFromFile``.

    Raises:
        FileNotFoundError: If the image is missing.
        OSError: If it does not decode (empty, truncated, not an image).
        ValueError: If it is smaller than ``min_size``.
    """

    def __init__(self, min_size: int = MIN_IMAGE_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.min_size = min_size

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            out = super().transform(results)
        except AssertionError as e:  # imdecode returned None
            raise _file_error(path, e) from None
        except Exception as e:
            raise _file_error(path, e) from e
        if out is not None:
            small = image_size_problem(out['img'].shape, self.min_size)
            if small:
                raise ValueError(f'{path}: {small}')
        return out


@TRANSFORMS.register_module()
class LoadAnnotationsChecked(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that checks each label against its image.

    Args:
        num_classes (int, optional): If given, every label id (after the
            dataset's ``reduce_zero_label`` and ``label_map``) must be in
            ``[0, num_classes)`` or equal ``ignore_index``. Defaults to
            None (ids are not checked).
        ignore_index (int): The id of unlabelled pixels. Defaults to 255.
        **kwargs: Arguments of mmseg's ``LoadAnnotations``.

    Raises:
        FileNotFoundError: If the label is missing.
        OSError: If it does not decode.
        ValueError: If it is not single-channel, not the size of its image,
            or (with ``num_classes``) holds an invalid id.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _load_seg_map(self, results: dict) -> None:
        path = results['seg_map_path']
        try:
            self._check_depth(path)
            super()._load_seg_map(results)
        except (AssertionError, _LabelError):  # reduce_zero_label mismatch:
            raise  # mmseg's message; or ours, naming the file
        except Exception as e:
            raise _file_error(path, e) from e
        label = results['gt_seg_map']
        # mmseg squeezes the decoded label: a colour label stays 3-D
        image_shape = results.get('ori_shape', label.shape[:2])
        # the ids are already reduced and mapped: check them as they are
        problems = seg_label_problems(label, image_shape, self.num_classes,
                                      self.ignore_index,
                                      label_value_lut(False, None))
        if problems:
            raise ValueError(f'{path}: ' + '; '.join(problems))

    def _check_depth(self, path: str) -> None:
        """Refuse a label whose stored ids do not fit the parent's uint8
        cast (a 16-bit PNG); an 8-bit PNG is not decoded twice."""
        data = fileio.get(path, backend_args=self.backend_args)
        if not data or not wider_than_8_bits(data):
            return  # empty: the parent's decode names the problem
        label = mmcv.imfrombytes(
            data, flag='unchanged', backend=self.imdecode_backend)
        problem = label_depth_problem(label) if label is not None else None
        if problem:
            raise _LabelError(f'{path}: {problem}')

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', num_classes={self.num_classes}'
                f', ignore_index={self.ignore_index})')
