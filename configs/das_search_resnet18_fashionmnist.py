# Search space and schedule for das_resnet18_fashionmnist.py; see _base_/das_search.py.
_base_ = ['./das_resnet18_fashionmnist.py', './_base_/das_search.py']

model = dict(
    data_preprocessor=dict(policy=None, cell={{_base_.das_search_cell}}))
# alpha is not regularised like the weights (DARTS)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'.cell.alphas': dict(decay_mult=0.0)}))
