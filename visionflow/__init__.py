"""visionflow: a reproducible computer-vision pipeline (data, augmentation, models, detection, tracking)."""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; on others
# (e.g. an AVX2-only AMD EPYC) it falls back to Eigen's, with which `train_classifier` took 14m50s against 8m20s
# (README: Reproducibility). Set before anything imports TensorFlow; TF_ENABLE_ONEDNN_OPTS=0 still turns it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
