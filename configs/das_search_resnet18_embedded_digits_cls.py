# The DAS search for das_resnet18_embedded_digits_cls.py (docs/das_search.md);
# see _base_/das_search.py. Then train with the policy it writes:
#   python tools/train.py configs/das_search_resnet18_embedded_digits_cls.py
#   python tools/train.py configs/das_resnet18_embedded_digits_cls.py \
#       --cfg-options model.data_preprocessor.policy=work_dirs/das_search_resnet18_embedded_digits_cls/policy.json
_base_ = [
    './das_resnet18_embedded_digits_cls.py', './_base_/das_search.py'
]

model = dict(
    data_preprocessor=dict(
        policy=None,
        cell=dict(
            type='DASCell',
            ops=('identity', 'translate_x', 'translate_y', 'scale', 'rotate'),
            num_frames=4,  # = das_resnet18_embedded_digits_cls.py's
            profile='symmetric',
            num_nodes=1)))
das_search = dict(log_interval=5)
