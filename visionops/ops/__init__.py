"""The Python API of the ops, one module per op family (as csrc/): thin
wrappers over torch.ops.visionops, with their fake kernels, autograd and
autocast registrations. Each family module's __all__ lists its public names;
this package exports them all."""

from visionops.ops import boxes as _boxes
from visionops.ops import coco as _coco
from visionops.ops import coding as _coding
from visionops.ops import losses as _losses
from visionops.ops import masks as _masks
from visionops.ops import matching as _matching
from visionops.ops import nms as _nms
from visionops.ops import roi as _roi
from visionops.ops.boxes import *
from visionops.ops.coco import *
from visionops.ops.coding import *
from visionops.ops.losses import *
from visionops.ops.masks import *
from visionops.ops.matching import *
from visionops.ops.nms import *
from visionops.ops.roi import *

__all__ = []
__all__ += _boxes.__all__
__all__ += _coco.__all__
__all__ += _coding.__all__
__all__ += _losses.__all__
__all__ += _masks.__all__
__all__ += _matching.__all__
__all__ += _nms.__all__
__all__ += _roi.__all__
