# Shared by the das_search_*.py configs: the search space and the search.
# A DARTS cell mixes the candidate transforms by softmax(alpha) instead of
# applying one fixed policy, and DASSearchHook runs the bilevel search:
# alpha on one part of the training set with its own optimizer, the weights
# on the other with the config's optimizer, then perturbation-based
# selection, which writes policy.json to the work dir (docs/das_search.md).
das_search_cell = dict(
    type='DASCell',
    ops=('identity', 'translate_x', 'translate_y', 'scale', 'rotate'),
    num_frames=8,  # must equal the searched config's num_frames
    profile='symmetric',
    num_nodes=1)
# The hook's configuration: every key and its meaning in
# mmdas/engine/das_search_hook.py (SEARCH_DEFAULTS).
das_search = dict(
    train_portion=0.5,
    arch_optimizer=dict(
        type='Adam', lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3),
    log_interval=50,
    selection=dict(criterion='accuracy', edge_decision='random'))
custom_hooks = [dict(type='DASSearchHook')]
