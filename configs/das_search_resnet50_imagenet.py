# Search space for das_resnet50_imagenet.py: a DARTS cell mixes the candidate transforms by
# softmax(alpha) instead of applying one fixed policy. The search schedule (alpha on
# half of the training set with its own optimizer, weights on the other half, then
# perturbation-based selection) reads the `das_search` section; until a search hook
# runs it, training this config trains alpha jointly with the weights.
_base_ = './das_resnet50_imagenet.py'

das_cell = dict(
    type='DASCell',
    ops=('identity', 'translate_x', 'translate_y', 'scale', 'rotate'),
    num_frames={{_base_.num_frames}},
    profile='symmetric',
    num_nodes=1)
data_preprocessor = dict(policy=None, cell=das_cell)

# alpha is not regularised like the weights (DARTS)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'.cell.alphas': dict(decay_mult=0.0)}))
das_search = dict(
    arch_optimizer=dict(
        type='Adam', lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3),
    train_portion=0.5,
    selection=dict(criterion='accuracy', edge_decision='random'))
