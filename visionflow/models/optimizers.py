"""Adam with layer-wise learning-rate decay over MobileNetV2's blocks (classifier.layer_decay).

Keras has no per-variable learning rate, and scaling gradients cannot stand in for one: Adam divides each
gradient by its own running magnitude, so a scaled gradient gives the same step. The rate itself has to change,
which is what this Adam does in `update_step`, per variable, from the layer the variable belongs to.
"""

from __future__ import annotations

import re

import keras

# MobileNetV2's layers, top down: Conv_1 (+ Conv_1_bn), block_16 ... block_1, expanded_conv (block 0), Conv1 (+
# bn_Conv1, the stem). Their distance from the head: Conv_1 is 1, block_k is 18 - k, block 0 is 18, the stem 19.
_TOP = re.compile(r"Conv_1(_bn)?$")
_BLOCK = re.compile(r"block_(\d+)_")
_BLOCK_ZERO = "expanded_conv"
_STEM = re.compile(r"(bn_)?Conv1$")
STEM_DEPTH = 19


def mobilenet_v2_depth(path: str) -> int:
    """How many MobileNetV2 stages lie between the variable at `path` (Keras' "layer/variable") and the head:
    0 for the head's own variables (any layer that is not MobileNetV2's)."""
    layer = path.split("/")[-2] if "/" in path else path
    if _TOP.match(layer):
        return 1
    if block := _BLOCK.match(layer):
        return 18 - int(block.group(1))
    if layer.startswith(_BLOCK_ZERO):
        return 18
    if _STEM.match(layer):
        return STEM_DEPTH
    return 0


@keras.saving.register_keras_serializable(package="visionflow")
class LayerDecayAdam(keras.optimizers.Adam):
    """Adam whose rate for a MobileNetV2 variable is the scheduled rate x `layer_decay` ** its depth below the head
    (`mobilenet_v2_depth`): the head trains at the full rate, the stem at `layer_decay` ** 19 of it. Layer-wise
    rate decay (ULMFiT's discriminative fine-tuning; BEiT) keeps the early, generic ImageNet features closer to
    where they started than the late, task-specific ones."""

    def __init__(self, layer_decay: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay: got {layer_decay}; it must be in (0, 1] (1 = the same rate everywhere)")
        self.layer_decay = layer_decay

    def rate_factor(self, path: str) -> float:
        """The multiple of the scheduled rate that the variable at `path` trains at."""
        return self.layer_decay ** mobilenet_v2_depth(path)

    def update_step(self, gradient, variable, learning_rate):
        # `variable` may be the backend's own (a tf.Variable, with no Keras path): find the Keras variable it stands
        # for among those the optimizer was built on. The factor is a Python float, fixed when the step is traced.
        path = self._trainable_variables[self._get_variable_index(variable)].path
        return super().update_step(gradient, variable, learning_rate * self.rate_factor(path))

    def get_config(self):
        return {**super().get_config(), "layer_decay": self.layer_decay}
