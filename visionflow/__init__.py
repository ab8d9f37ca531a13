"""visionflow: a reproducible computer-vision pipeline (data, augmentation, models, detection, tracking)."""

__version__ = "0.1.0"
