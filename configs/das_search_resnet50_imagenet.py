# The DAS search for das_resnet50_imagenet.py (docs/das_search.md); see
# _base_/das_search.py.
_base_ = ['./das_resnet50_imagenet.py', './_base_/das_search.py']

# mmpretrain's Runner uses model.data_preprocessor (see das_resnet*.py)
model = dict(
    data_preprocessor=dict(policy=None, cell={{_base_.das_search_cell}}))
