"""Faster R-CNN on visionops' ops.

    from visionops.models import fasterrcnn_resnet50_fpn, faster_rcnn_small
    model = fasterrcnn_resnet50_fpn(num_classes=91)          # torchvision's layout and parameter names
    model.load_state_dict(torchvision_model.state_dict())    # its weights load as they are
    detections = model.eval()([image])                       # [{"boxes", "labels", "scores"}]
    losses = model.train()(images, targets)                  # {"loss_classifier", ...}

The backbone, FPN and the heads' convolutions and linear layers are
torchvision's modules (``pip install 'visionops[models]'``); everything
detection-specific runs on our ops (models/_components): anchors, box
coding, proposal filtering and NMS for the whole batch in single native
calls, RoI Align over the FPN levels, matching, sampling, the losses, and
the final per-class NMS. ``forward_padded`` is the fixed-size inference
path that ``torch.export`` accepts (models/_components/padded.py).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

import visionops
from visionops.models._components.padded import forward_padded
from visionops.models._components.roi_heads import RoIHeads
from visionops.models._components.rpn import RegionProposalNetwork
from visionops.models._components.transform import RCNNTransform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision_detection():
    try:
        from torchvision.models.detection import faster_rcnn, mask_rcnn, rpn
    except ImportError as e:  # pragma: no cover
        raise ImportError("visionops.models needs torchvision for backbones and layers: "
                          "pip install 'visionops[models]'") from e
    return faster_rcnn, mask_rcnn, rpn


class FasterRCNN(nn.Module):
    """Faster R-CNN: ``transform``, ``backbone`` (with ``out_channels``),
    ``rpn`` and ``roi_heads``, as torchvision names them. The keyword
    arguments and their defaults are torchvision's FasterRCNN's, plus
    ``mask_threshold`` (bool masks, Mask R-CNN) and ``channels_last`` (see
    ``features``)."""

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, *, min_size: int = 800,
                 max_size: int = 1333, image_mean=None, image_std=None, rpn_anchor_generator: nn.Module | None = None,
                 rpn_head: nn.Module | None = None, rpn_pre_nms_top_n_train: int = 2000,
                 rpn_pre_nms_top_n_test: int = 1000, rpn_post_nms_top_n_train: int = 2000,
                 rpn_post_nms_top_n_test: int = 1000, rpn_nms_thresh: float = 0.7, rpn_fg_iou_thresh: float = 0.7,
                 rpn_bg_iou_thresh: float = 0.3, rpn_batch_size_per_image: int = 256,
                 rpn_positive_fraction: float = 0.5, rpn_score_thresh: float = 0.0,
                 box_roi_pool: nn.Module | None = None, box_head: nn.Module | None = None,
                 box_predictor: nn.Module | None = None, box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5,
                 box_detections_per_img: int = 100, box_fg_iou_thresh: float = 0.5, box_bg_iou_thresh: float = 0.5,
                 box_batch_size_per_image: int = 512, box_positive_fraction: float = 0.25,
                 bbox_reg_weights=None, representation_size: int = 1024, mask_threshold: float | None = None,
                 channels_last: bool = True, **roi_heads_kwargs) -> None:
        super().__init__()
        tv_faster, _, tv_rpn = _torchvision_detection()
        if box_predictor is None and num_classes is None:
            raise ValueError("visionops.models.FasterRCNN: num_classes is needed when box_predictor is not given")
        if box_predictor is not None and num_classes is not None:
            raise ValueError("visionops.models.FasterRCNN: give num_classes or box_predictor, not both")
        out_channels = backbone.out_channels
        levels = len(backbone.fpn.inner_blocks) + 1 if hasattr(backbone, "fpn") else 1
        if rpn_anchor_generator is None:
            sizes = tuple((32 * 2**i,) for i in range(levels))
            rpn_anchor_generator = visionops.AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        if rpn_head is None:
            rpn_head = tv_rpn.RPNHead(out_channels, rpn_anchor_generator.num_anchors_per_location()[0])
        self.rpn = RegionProposalNetwork(
            rpn_anchor_generator, rpn_head, fg_iou_thresh=rpn_fg_iou_thresh, bg_iou_thresh=rpn_bg_iou_thresh,
            batch_size_per_image=rpn_batch_size_per_image, positive_fraction=rpn_positive_fraction,
            pre_nms_top_n={"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test},
            nms_thresh=rpn_nms_thresh, score_thresh=rpn_score_thresh)
        if box_roi_pool is None:
            names = [str(i) for i in range(max(levels - 1, 1))]
            box_roi_pool = visionops.MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2)
        if box_head is None:
            res = box_roi_pool.output_size[0]
            box_head = tv_faster.TwoMLPHead(out_channels * res**2, representation_size)
        if box_predictor is None:
            box_predictor = tv_faster.FastRCNNPredictor(representation_size, num_classes)
        self.roi_heads = RoIHeads(
            box_roi_pool, box_head, box_predictor, fg_iou_thresh=box_fg_iou_thresh, bg_iou_thresh=box_bg_iou_thresh,
            batch_size_per_image=box_batch_size_per_image, positive_fraction=box_positive_fraction,
            bbox_reg_weights=bbox_reg_weights, score_thresh=box_score_thresh, nms_thresh=box_nms_thresh,
            detections_per_img=box_detections_per_img, **roi_heads_kwargs)
        self.backbone = backbone
        self.transform = RCNNTransform(min_size, max_size, list(image_mean or IMAGENET_MEAN),
                                       list(image_std or IMAGENET_STD), mask_threshold=mask_threshold)
        self.channels_last = channels_last

    def features(self, tensors: Tensor) -> OrderedDict[str, Tensor]:
        """The backbone's feature maps. With ``channels_last`` (the default)
        a CPU batch runs the backbone in channels-last order: oneDNN's
        convolutions run faster on it (3.3 s against 3.8 s for ResNet-50-FPN
        on two 800 x 800 images, one thread), and the features come out
        channels-last, which our RoI Align reads in place instead of
        transposing every level per call. Results agree with channels-first
        to rounding; ``channels_last=False`` keeps torchvision's layout."""
        if self.channels_last and tensors.device.type == "cpu" and tensors.dim() == 4:
            tensors = tensors.contiguous(memory_format=torch.channels_last)
        feats = self.backbone(tensors)
        return OrderedDict([("0", feats)]) if isinstance(feats, Tensor) else feats

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        """Training: images and targets (``boxes`` [K, 4] x1 y1 x2 y2 in
        pixels, ``labels`` [K] int64, ``masks`` [K, H, W] for Mask R-CNN) to a
        dict of losses. Inference: images to one dict per image of ``boxes``
        [D, 4], ``labels`` [D], ``scores`` [D] (``masks`` [D, 1, H, W])."""
        if self.training and targets is None:
            raise ValueError("visionops.models: targets are needed in training mode")
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        image_list, targets = self.transform(images, targets)
        features = self.features(image_list.tensors)
        proposals, rpn_losses = self.rpn(image_list, features, targets)
        detections, head_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        if self.training:
            return {**rpn_losses, **head_losses}
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)

    def forward_padded(self, images: Tensor) -> dict[str, Tensor]:
        """Fixed-size inference for ``torch.export``: images [B, 3, H, W] at
        the model's size to padded detections and counts (see
        models/_components/padded.py)."""
        return forward_padded(self, images)


def resnet50_fpn_backbone(trainable_layers: int = 5, norm_layer: type[nn.Module] | None = None) -> nn.Module:
    """torchvision's ResNet-50 FPN backbone as its detection builders make it
    without weights (BatchNorm2d, every layer trainable)."""
    from torchvision.models import resnet50
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

    return _resnet_fpn_extractor(resnet50(weights=None, norm_layer=norm_layer or nn.BatchNorm2d), trainable_layers)


def fasterrcnn_resnet50_fpn(num_classes: int = 91, **kwargs) -> FasterRCNN:
    """torchvision's ``fasterrcnn_resnet50_fpn`` layout (its state_dict loads),
    random weights; keyword arguments as FasterRCNN's."""
    return FasterRCNN(resnet50_fpn_backbone(), num_classes, **kwargs)


class SmallBackbone(nn.Module):
    """A small CNN with an FPN, for training on a CPU in minutes: four
    stride-2 stages of 3x3 convolutions with batch norm (widths ``widths``),
    the last three into torchvision's FeaturePyramidNetwork of
    ``out_channels`` plus a max-pooled level (strides 8, 16, 32, 64)."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 160), out_channels: int = 64) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        chans = [widths[0], *widths]
        self.stages = nn.ModuleList(block(chans[i], chans[i + 1]) for i in range(len(widths)))
        self.fpn = FeaturePyramidNetwork(list(widths[1:]), out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        x = self.stem(x)
        outs = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 1:
                outs[str(i - 1)] = x
        return self.fpn(outs)


SMALL_DEFAULTS = {
    "rpn_pre_nms_top_n_train": 600, "rpn_pre_nms_top_n_test": 300, "rpn_post_nms_top_n_train": 300,
    "rpn_post_nms_top_n_test": 100, "rpn_batch_size_per_image": 128, "box_batch_size_per_image": 96,
    "representation_size": 256, "box_detections_per_img": 50,
}


def small_anchor_generator() -> nn.Module:
    return visionops.AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4)


def faster_rcnn_small(num_classes: int = 7, image_size: int = 256, **kwargs) -> FasterRCNN:
    """A Faster R-CNN that trains on a CPU in minutes: SmallBackbone (four
    FPN levels of 64 channels), anchors 16 to 128, 300 proposals, 96 RoIs
    per image and a 256-wide box head; images kept at ``image_size``."""
    options = {**SMALL_DEFAULTS, "min_size": image_size, "max_size": image_size,
               "rpn_anchor_generator": small_anchor_generator(), **kwargs}
    return FasterRCNN(SmallBackbone(), num_classes, **options)
