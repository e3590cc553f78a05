"""``python -m visionops.train MODEL``: one training command for every model.

    python -m visionops.train faster_rcnn                       # synthetic shapes, CPU, the small configuration
    python -m visionops.train mask_rcnn --minutes 10 --out runs/mask
    python -m visionops.train faster_rcnn --data path/to/coco   # images/ + annotations.json
    python -m visionops.train mask_rcnn --resume runs/mask/last.pt
    torchrun --nproc-per-node 2 -m visionops.train faster_rcnn  # DistributedDataParallel (gloo on CPU, nccl on GPU)

Prints a progress line (step, losses, images/s, elapsed, time left),
evaluates on the held-out split every ``--eval-every`` steps and at the end
with visionops' MeanAveragePrecision (bbox; segm too for masks), and writes
to ``--out``: ``last.pt`` (the checkpoint, for ``--resume`` and
``python -m visionops.predict``), ``results.json`` (the arguments, the loss
and mAP history, the final metrics) and ``curves.png`` (with matplotlib).
"""

from visionops.train.loop import main, parse_args, train

__all__ = ["main", "parse_args", "train"]
