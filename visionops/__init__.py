"""visionops: fast native detection and segmentation ops for PyTorch.

The ops have torchvision.ops' names, signatures and results, and are
registered with the dispatcher as ``torch.ops.visionops.*``. The public names
are the op families' (visionops/ops/), re-exported here.
"""

from visionops import ops as _ops
from visionops._extension import WITH_CUDA
from visionops._version import __version__
from visionops.ops import *
from visionops.patch import patch_torchvision

__all__ = ["WITH_CUDA", "__version__", "patch_torchvision"]
__all__ += _ops.__all__
