# Shared by the das_search_*.py configs: the search space and the search
# schedule. A DARTS cell mixes the candidate transforms by softmax(alpha)
# instead of applying one fixed policy. The search (alpha on half of the
# training set with its own optimizer, weights on the other half, then
# perturbation-based selection) reads `das_search`; trained without a search
# hook, a search config trains alpha jointly with the weights.
das_search_cell = dict(
    type='DASCell',
    ops=('identity', 'translate_x', 'translate_y', 'scale', 'rotate'),
    num_frames=8,  # must equal the searched config's num_frames
    profile='symmetric',
    num_nodes=1)
das_search = dict(
    arch_optimizer=dict(
        type='Adam', lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3),
    train_portion=0.5,
    selection=dict(criterion='accuracy', edge_decision='random'))
