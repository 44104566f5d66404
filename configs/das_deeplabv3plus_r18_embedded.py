# The demo job (`make demo`): DAS DeepLabV3+ with a GSF-ResNetV1c-18 (D8,
# half width), trained from scratch on the embedded MNIST-digits segmentation
# set, sized for 10 minutes on 2 CPU cores: 8 images x 4 frames per step.
# Plain 2D twin: plain_deeplabv3plus_r18_embedded.py.
_base_ = './plain_deeplabv3plus_r18_embedded.py'

# T=4 rather than the paper's 8 keeps a CPU step affordable
num_frames = 4
das_policy = dict(
    transforms=[dict(op='rotate', magnitude=8.0)],
    num_frames=num_frames,
    profile='symmetric')
model = dict(
    # EncoderDecoder that tells the fusion head where slide crops lie
    type='DASEncoderDecoder',
    data_preprocessor=dict(type='DASSegDataPreProcessor', policy=das_policy),
    backbone=dict(
        type='GSFResNetV1c', num_frames=num_frames, temporal_module='gsf'),
    decode_head=dict(
        type='TemporalFusionHead', wrapped_type='DepthwiseSeparableASPPHead'),
    auxiliary_head=dict(type='TemporalFusionHead', wrapped_type='FCNHead'))
