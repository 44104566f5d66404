# DAS DeepLabV3+ R-50-D8 on Pascal VOC 2012 + SBD aug, 512x512, 40k iters.
# Everything but the DAS parts is mmseg's own config (4 GPUs x 4 images), so
# the result compares with mmseg's model zoo (76.81 mIoU).
# Plain 2D twin: plain_deeplabv3plus_voc12aug.py.
# GPU memory (docs/benchmarks.md, "The paper configs at their real size";
# extrapolated from CPU measurements, not yet measured on a GPU): as shipped,
# 4 images x 8 frames = 32 frames of 512x512 per GPU, about 57 GiB: an 80 GB
# GPU. 40 GB: --cfg-options model.backbone.with_cp=True (about 32 GiB), or 2
# images per GPU on 8 GPUs (train_dataloader.batch_size=2, the same total
# batch of 16; about 29 GiB). 24 GB: both (about 16.5 GiB). AMP (--amp) lowers
# each of these further (not yet measured).
# The base is the plain twin: mmseg's/mmpretrain's config, run offline, with
# mmdas' checked loaders.
_base_ = './plain_deeplabv3plus_voc12aug.py'

num_frames = 8
das_policy = dict(
    transforms=[dict(op='rotate', magnitude=3.0)],
    num_frames=num_frames,
    profile='symmetric')

model = dict(
    # EncoderDecoder that tells the fusion head where slide crops lie
    type='DASEncoderDecoder',
    # mmseg's base keeps pretrained='open-mmlab://resnet50_v1c' (ImageNet,
    # downloaded at the first run); offline or in tests:
    #   --cfg-options model.pretrained=None
    data_preprocessor=dict(type='DASSegDataPreProcessor', policy=das_policy),
    backbone=dict(
        type='GSFResNetV1c', num_frames=num_frames, temporal_module='gsf'),
    decode_head=dict(
        type='TemporalFusionHead',
        wrapped_type='DepthwiseSeparableASPPHead',
        fusion='inverse_warp'),
    auxiliary_head=dict(
        type='TemporalFusionHead', wrapped_type='FCNHead',
        fusion='inverse_warp'))

# mmseg's VOC pipeline pads each crop with Pad(size=crop_size), which records
# nothing of where the image ends: DASPad pads the same and records it, so
# each image turns about its own centre and its padding is not image
train_pipeline = [
    dict(t, type='DASPad') if t['type'] == 'Pad' else
    dict(type='PackDASSegInputs') if t['type'] == 'PackSegInputs' else t
    for t in _base_.train_pipeline
]
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(d, pipeline=train_pipeline)
        for d in _base_.train_dataloader.dataset.datasets
    ]))
