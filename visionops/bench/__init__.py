"""Benchmarks of visionops against torchvision: ``python -m visionops.bench``."""
