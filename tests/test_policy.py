"""DASPolicy: plain data, validated when built."""
import json

import pytest
import torch

import mmdas  # noqa: F401
from mmdas import geometry as G
from mmdas.policy import DASPolicy, build_policy

CFG = dict(
    transforms=[
        dict(op='translate_x', magnitude=0.05),
        dict(op='rotate', magnitude=3.0)
    ],
    num_frames=6,
    profile='symmetric')


def test_round_trip_dict_json_file(tmp_path):
    policy = DASPolicy.from_dict(CFG)
    assert policy.to_dict() == CFG
    assert DASPolicy.from_json(policy.to_json()) == policy
    path = tmp_path / 'p.json'
    policy.dump(str(path))
    assert json.loads(path.read_text()) == CFG
    assert DASPolicy.load(str(path)) == policy
    assert build_policy(str(path)) == policy
    assert build_policy(CFG) == policy and build_policy(policy) is policy


def test_defaults_and_identity_without_magnitude():
    policy = DASPolicy.from_dict(dict(transforms=[dict(op='identity')]))
    assert policy.num_frames == 8 and policy.profile == 'symmetric'
    assert policy.reference_frame == 4
    assert torch.equal(policy.matrices(10, 20), torch.eye(3).repeat(8, 1, 1))


def test_matrices_follow_the_geometry_module():
    policy = DASPolicy.from_dict(CFG)
    mats = policy.matrices(30, 50)
    assert mats.shape == (6, 3, 3) and mats.dtype == torch.float32
    want = G.policy_matrices([('translate_x', 0.05), ('rotate', 3.0)],
                             G.frame_offsets(6), 30, 50)
    assert torch.equal(mats, want)
    assert torch.equal(mats[3], torch.eye(3))
    # translation by d * 0.05 of the width = 0.1 * d in normalised units
    only_t = DASPolicy([dict(op='translate_x', magnitude=0.05)],
                       num_frames=6).matrices(30, 50)
    assert only_t[:, 0, 2].tolist() == pytest.approx(
        [0.1 * d for d in range(-3, 3)], abs=1e-6)


def test_forward_profile():
    policy = DASPolicy([dict(op='scale', magnitude=1.1)], num_frames=4,
                       profile='forward')
    assert policy.reference_frame == 0
    assert policy.matrices(8, 8)[:, 0, 0].tolist() == pytest.approx(
        [1, 1.1, 1.21, 1.331], abs=1e-6)


def test_pingpong_profile_round_trips_and_mirrors_frames():
    policy = DASPolicy([dict(op='translate_x', magnitude=0.1)], num_frames=6,
                       profile='pingpong')
    assert policy.reference_frame == 3
    assert policy.matrices(8, 8)[:, 0, 2].tolist() == pytest.approx(
        [0.2 * d for d in (3, 2, 1, 0, 1, 2)], abs=1e-6)
    assert DASPolicy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize('cfg, field, words', [
    (dict(transforms=[dict(op='rotate', magnitude=1), dict(op='rotat',
                                                       magnitude=1)]),
     'policy.transforms[1].op', ["unknown DAS op 'rotat'", "'rotate'",
                                 "'translate_x'"]),
    (dict(transforms=[dict(op='scale', magnitude=-1.0)]),
     'policy.transforms[0].magnitude', ['-1.0', "'scale'", '[0.5, 2.0]']),
    (dict(transforms=[dict(op='rotate', magnitude=120)]),
     'policy.transforms[0].magnitude', ['120', '[-90.0, 90.0]']),
    (dict(transforms=[dict(op='translate_y', magnitude=0.7)]),
     'policy.transforms[0].magnitude', ['0.7', '[-0.5, 0.5]']),
    (dict(transforms=[dict(op='rotate')]), 'policy.transforms[0].magnitude',
     ['missing']),
    (dict(transforms=[dict(op='rotate', magnitude=1, size=3)]),
     'policy.transforms[0]', ["'size'", "'magnitude'"]),
    (dict(transforms=[], num_frames=0), 'policy.num_frames',
     ['0 is invalid', 'integer >= 1']),
    (dict(transforms=[], num_frames=2.5), 'policy.num_frames',
     ['2.5 is invalid']),
    (dict(transforms=[], profile='sym'), 'policy.profile',
     ["'sym'", "['symmetric', 'pingpong', 'forward']"]),
    (dict(transforms=[], num_frame=4), 'policy', ["'num_frame'",
                                                  "'num_frames'"]),
    (dict(transforms=dict(op='rotate', magnitude=1)), 'policy.transforms',
     ['list']),
])
def test_bad_policies_fail_at_build_time(cfg, field, words):
    with pytest.raises(ValueError) as err:
        DASPolicy.from_dict(cfg)
    msg = str(err.value)
    assert msg.startswith(field + ':'), msg
    for word in words:
        assert word in msg, (word, msg)


def test_error_names_the_config_field():
    with pytest.raises(ValueError, match=r'^train_pipeline\[3\]\.policy\.'
                       r'profile: unknown frame profile'):
        build_policy(dict(transforms=[], profile='x'),
                     field='train_pipeline[3].policy')
