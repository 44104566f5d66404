# The DAS search for das_resnet18_cifar10.py (docs/das_search.md); see
# _base_/das_search.py.
_base_ = ['./das_resnet18_cifar10.py', './_base_/das_search.py']

# mmpretrain's Runner uses model.data_preprocessor (see das_resnet*.py)
model = dict(
    data_preprocessor=dict(policy=None, cell={{_base_.das_search_cell}}))
