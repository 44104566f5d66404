# The DAS search for das_deeplabv3plus_cityscapes.py (docs/das_search.md); see
# _base_/das_search.py.
_base_ = ['./das_deeplabv3plus_cityscapes.py', './_base_/das_search.py']

model = dict(
    data_preprocessor=dict(policy=None, cell={{_base_.das_search_cell}}),
    # a mixture of transforms has no single inverse: fuse by plain mean
    decode_head=dict(fusion='mean'),
    auxiliary_head=dict(fusion='mean'))
