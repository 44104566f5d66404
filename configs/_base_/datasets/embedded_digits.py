# Embedded MNIST-digits segmentation set (real digits pasted on coloured
# canvases, 11 classes), in the stock ``BaseSegDataset`` layout:
#   data/embedded_digits/{img_dir,ann_dir}/{train,val}/*.png
# Write it with `python tools/make_embedded_dataset.py` (the demo does that):
# 2,000 training and 100 test canvases of 96 pixels, the test split's digits
# held out from training.
dataset_type = 'BaseSegDataset'
data_root = 'data/embedded_digits'
metainfo = dict(
    classes=('background', 'digit_0', 'digit_1', 'digit_2', 'digit_3',
             'digit_4', 'digit_5', 'digit_6', 'digit_7', 'digit_8',
             'digit_9'),
    palette=[[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25],
             [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
             [240, 50, 230], [210, 245, 60], [250, 190, 212]])
crop_size = (80, 80)  # = the demo canvas (tools/run_demo.py --size)
# mmdas' checked loaders raise an error naming the file when an image or
# label does not decode, a label is not its image's size, or (num_classes
# given) holds a class id the model does not have
load_annotations = dict(
    type='LoadAnnotationsChecked', num_classes=len(metainfo['classes']))
train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    load_annotations,
    dict(
        type='RandomResize',
        scale=crop_size,
        # >= 1: a crop never needs padding (its 255 labels are ignored, but
        # would waste pixels of the crop); up to 1.25: larger crops would
        # cut most digits in part
        ratio_range=(1.0, 1.25),
        keep_ratio=True),
    # no cat_max_ratio: background covers >90% of every crop anyway
    dict(type='RandomCrop', crop_size=crop_size),
    # A mirrored digit is not a digit (a flipped 2 resembles a 5), so flips
    # are off; the transform stays so that overrides can turn it on.
    dict(type='RandomFlip', prob=0.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    # annotations are loaded after Resize: metrics use the original size
    load_annotations,
    dict(type='PackSegInputs')
]
img_ratios = [0.75, 1.0, 1.25]
tta_pipeline = [
    dict(type='LoadImageFromFileChecked', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='Resize', scale_factor=r, keep_ratio=True)
            for r in img_ratios
        ], [load_annotations], [dict(type='PackSegInputs')]])
]
# num_workers=0: the images are tiny and worker processes would compete for
# the few CPU cores with the model (persistent_workers needs workers > 0).
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
