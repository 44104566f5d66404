# The DAS search for das_deeplabv3plus_cityscapes.py (docs/das_search.md); see
# _base_/das_search.py.
# GPU memory: expected about what das_deeplabv3plus_cityscapes.py needs (same images,
# crop and T per GPU; the weight and alpha steps run one after the
# other; not measured): see that config's header for 80/40/24 GB.
_base_ = ['./das_deeplabv3plus_cityscapes.py', './_base_/das_search.py']

model = dict(
    data_preprocessor=dict(policy=None, cell={{_base_.das_search_cell}}),
    # a mixture of transforms has no single inverse: fuse by plain mean
    decode_head=dict(fusion='mean'),
    auxiliary_head=dict(fusion='mean'))
