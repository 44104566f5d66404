# The DAS search for das_resnet18_cifar10.py (docs/das_search.md); see
# _base_/das_search.py.
# GPU memory: expected about what das_resnet18_cifar10.py needs (same images,
# crop and T per GPU; the weight and alpha steps run one after the
# other; not measured): see that config's header for 80/40/24 GB.
_base_ = ['./das_resnet18_cifar10.py', './_base_/das_search.py']

# mmpretrain's Runner uses model.data_preprocessor (see das_resnet*.py)
model = dict(
    data_preprocessor=dict(policy=None, cell={{_base_.das_search_cell}}))
