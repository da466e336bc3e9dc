"""mmengine's DDP wrapper, usable for CPU (gloo) runs too."""
from __future__ import annotations

from typing import Any, List, Optional

import torch
from mmengine.model import MMDistributedDataParallel

from ..registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DistillDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps CPU modules.

    mmengine's Runner always passes ``device_ids=[LOCAL_RANK]``, which
    ``DistributedDataParallel`` rejects for a module on the CPU (gloo backend). On CPU this
    wrapper drops ``device_ids``; on GPU it is mmengine's wrapper unchanged.

    Args:
        module (nn.Module): The model to wrap.
        device_ids (list[int], optional): As for DDP; ignored for CPU modules.
        **kwargs: Passed to ``MMDistributedDataParallel``.
    """

    def __init__(self,
                 module: torch.nn.Module,
                 device_ids: Optional[List[int]] = None,
                 **kwargs: Any) -> None:
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)
