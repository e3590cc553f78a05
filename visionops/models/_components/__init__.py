"""The detection-specific parts shared by the models: matching and sampling,
the region proposal network, the RoI heads and the image transform. Each
runs on visionops' ops (anchors, box coding, IoU, NMS, RoI Align, mask
pasting); convolutions and linear layers are torch's and torchvision's."""
