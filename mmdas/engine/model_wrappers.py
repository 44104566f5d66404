import torch
from mmengine.model import MMDistributedDataParallel

from mmdas.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class MMDASDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also works on a machine without CUDA.

    mmengine's Runner always passes ``device_ids=[LOCAL_RANK]``, which DDP
    rejects for CPU modules. Without CUDA, ``device_ids`` and
    ``output_device`` are dropped (gloo backend); with CUDA this is exactly
    :class:`mmengine.model.MMDistributedDataParallel`.
    """

    def __init__(self, module, detect_anomalous_params: bool = False,
                 **kwargs):
        if not torch.cuda.is_available():
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(
            module=module,
            detect_anomalous_params=detect_anomalous_params,
            **kwargs)
