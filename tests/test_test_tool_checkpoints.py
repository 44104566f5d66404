"""tools/test.py refuses a checkpoint that would run code, and one that does
not provide the model's weights, instead of evaluating a random model."""
import os.path as osp
import re
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import SEG_CONFIG, run_tool, seg_options
from test_compat import _hostile_checkpoint
from test_crash_safe_checkpoints import ListLogger

TEST = [sys.executable, osp.join('tools', 'test.py')]


def _test(ckpt, data_root, tmp_path, *extra):
    return run_tool(TEST + [
        SEG_CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'work'), *extra,
        '--cfg-options', *seg_options(data_root)
    ], check=False)


@pytest.fixture(scope='module')
def model_state(tmp_path_factory):
    """The embedded DeepLabV3+'s own (initial) weights."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(SEG_CONFIG)
    return MODELS.build(cfg.model).state_dict()


def test_code_in_checkpoint_is_refused(tiny_seg_root, tmp_path):
    marker = tmp_path / 'code_ran'
    ckpt = tmp_path / 'payload.pth'
    _hostile_checkpoint(ckpt, marker)
    proc = _test(ckpt, tiny_seg_root, tmp_path)
    assert proc.returncode != 0
    assert 'UntrustedCheckpointError: Refused to load the checkpoint' in \
        proc.stdout
    assert 'MMDAS_TRUSTED_CHECKPOINTS=1' in proc.stdout
    assert not marker.exists()
    assert 'Iter(test)' not in proc.stdout


def test_checkpoint_of_another_model_is_refused(tiny_seg_root, tmp_path):
    """The probe's case: keys that match almost none of the model's."""
    ckpt = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'conv.weight': torch.ones(4, 3, 3, 3),
                                'fc.weight': torch.ones(10, 4)}), str(ckpt))
    proc = _test(ckpt, tiny_seg_root, tmp_path)
    assert proc.returncode != 0
    out = proc.stdout
    assert re.search(r"The checkpoint covers 0 of the model's \d+ weights",
                     out), out[-3000:]
    assert 'expected by the model: backbone.stem.0.weight' in out
    assert "own keys: conv.weight, fc.weight" in out
    assert 'Iter(test)' not in out


@pytest.mark.slow  # ~20 s; the coverage rule has quick unit tests
def test_uncovered_weights_need_allow_missing(model_state, tiny_seg_root,
                                              tmp_path):
    state = {k: v for k, v in model_state.items()
             if not k.startswith('decode_head.conv_seg.')}
    ckpt = tmp_path / 'no_classifier.pth'
    torch.save(dict(meta={}, state_dict=state), str(ckpt))
    refused = _test(ckpt, tiny_seg_root, tmp_path)
    assert refused.returncode != 0
    assert ('Missing from it, expected by the model: '
            'decode_head.conv_seg.weight, decode_head.conv_seg.bias.'
            ) in refused.stdout
    allowed = _test(ckpt, tiny_seg_root, tmp_path, '--allow-missing',
                    'decode_head.conv_seg.*')
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert '2 weights are not in the checkpoint and keep their initial ' \
        'values' in allowed.stdout
    assert re.search(r'Iter\(test\) \[4/4\].*mIoU', allowed.stdout)


# --- CheckpointCoverageHook on its own (fast) -----------------------------


class _Net(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4, 2)

    def test_step(self, data):  # what BaseTTAModel asks of its module
        return data


def _check(model, state_dict, **kwargs):
    from types import SimpleNamespace

    from mmdas.engine import CheckpointCoverageHook
    runner = SimpleNamespace(model=model, logger=ListLogger())
    CheckpointCoverageHook(**kwargs).after_load_checkpoint(
        runner, dict(state_dict=state_dict))
    return runner.logger.lines


def test_coverage_complete_checkpoint_passes():
    state = _Net().state_dict()
    net = _Net()
    assert _check(net, {f'module.{k}': v for k, v in state.items()}) == []
    assert torch.equal(net.head.weight, state['head.weight'])


def test_coverage_missing_and_misshapen_weights_fail():
    state = _Net().state_dict()
    del state['head.bias']
    state['head.weight'] = torch.zeros(3, 4)
    with pytest.raises(RuntimeError) as err:
        _check(_Net(), state)
    message = str(err.value)
    # 8 weights: num_batches_tracked is not one
    assert "covers 6 of the model's 8 weights" in message
    assert 'expected by the model: head.bias.' in message
    assert 'head.weight: model (2, 4) vs checkpoint (3, 4)' in message


def test_coverage_allow_missing_and_warn_only():
    state = {k: v for k, v in _Net().state_dict().items()
             if not k.startswith('head.')}
    lines = _check(_Net(), state, allow_missing=['head.*'])
    assert lines == ["2 weights are not in the checkpoint and keep their "
                     "initial values (allowed by ['head.*']): head.weight, "
                     'head.bias']
    lines = _check(_Net(), state, strict=False)
    assert 'expected by the model: head.weight, head.bias.' in lines[0]
    assert lines[0].endswith('These weights keep their initial values.')


def test_coverage_sees_through_tta_and_key_remapping():
    """What mmengine loads into: the TTA model's module; a key the model
    renames on load (as a 2D-to-video remap does) counts as provided."""
    from mmengine.model import BaseTTAModel

    class TTA(BaseTTAModel):

        def merge_preds(self, data_samples_list):
            return data_samples_list

    def rename(state_dict, prefix, *args):
        if prefix + 'old_head.weight' in state_dict:
            for name in ('weight', 'bias'):
                state_dict[prefix + 'head.' + name] = state_dict.pop(
                    prefix + 'old_head.' + name)

    net = _Net()
    net._register_load_state_dict_pre_hook(rename)
    state = {k.replace('head.', 'old_head.'): v
             for k, v in _Net().state_dict().items()}
    assert _check(TTA(module=net), state) == []
