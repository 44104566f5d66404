# DAS DeepLabV3+ R-50-D8 on Cityscapes, 512x1024 crops, 80k iterations.
# Everything but the DAS parts is mmseg's own config (4 GPUs x 2 images, SGD
# 0.01, poly LR), so the result compares with mmseg's model zoo (80.09 mIoU).
# Plain 2D twin: plain_deeplabv3plus_cityscapes.py.
# GPU memory (docs/benchmarks.md, "The paper configs at their real size";
# extrapolated from CPU measurements, not yet measured on a GPU): as shipped,
# 2 images x 8 frames = 16 frames of 512x1024 per GPU, about 55 GiB: an 80 GB
# GPU. 40 GB: 1 image per GPU on 8 GPUs (train_dataloader.batch_size=1, the
# same total batch of 8; about 28 GiB); with_cp alone is too tight (about
# 35 GiB). 24 GB: 1 image per GPU on 8 GPUs and --cfg-options
# model.backbone.with_cp=True (about 18 GiB). AMP (--amp) lowers each of
# these further (not yet measured).
# The base is the plain twin: mmseg's/mmpretrain's config, run offline, with
# mmdas' checked loaders.
_base_ = './plain_deeplabv3plus_cityscapes.py'

# Each image becomes a T-frame video; frame T//2 is the image itself. The
# policy can also come from a JSON file written by a search:
#   --cfg-options model.data_preprocessor.policy=work_dirs/search/policy.json
num_frames = 8
das_policy = dict(
    transforms=[dict(op='translate_x', magnitude=0.02)],
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
