# The DAS search for the demo config das_deeplabv3plus_r18_embedded.py on the
# embedded digits (docs/das_search.md); see _base_/das_search.py. Then train
# the demo config with the policy it writes:
#   python tools/train.py configs/das_search_deeplabv3plus_r18_embedded.py
#   python tools/train.py configs/das_deeplabv3plus_r18_embedded.py \
#       --cfg-options model.data_preprocessor.policy=work_dirs/das_search_deeplabv3plus_r18_embedded/policy.json
_base_ = ['./das_deeplabv3plus_r18_embedded.py', './_base_/das_search.py']

model = dict(
    data_preprocessor=dict(
        policy=None,
        cell=dict(
            type='DASCell',
            ops=('identity', 'translate_x', 'translate_y', 'scale', 'rotate'),
            num_frames=4,  # = das_deeplabv3plus_r18_embedded.py's num_frames
            profile='symmetric',
            num_nodes=1)),
    # a mixture of transforms has no single inverse: fuse by plain mean
    decode_head=dict(fusion='mean'),
    auxiliary_head=dict(fusion='mean'))
das_search = dict(log_interval=20)
