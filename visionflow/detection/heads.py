"""A window head re-expressed as convolutions, so one pass over a feature map scores every window."""

from __future__ import annotations

import keras
from keras import layers

# Layers that act on each window's vector on its own and need no weights moved: kept as they are.
_ELEMENTWISE = (layers.Activation, layers.ReLU, layers.Softmax, layers.LeakyReLU)
# Inert at inference (Dropout scales only in training mode).
_INERT = (layers.Dropout, layers.SpatialDropout2D, layers.GaussianDropout, layers.GaussianNoise)


def convolutional_head(head: keras.Model, step: int) -> keras.Model:
    """`head` over (cells, cells, C) windows as a conv net over a whole (h, w, C) map, windows every `step` cells.

    Flatten + Dense(u) over the window == Conv2D(u, kernel=(cells, cells), 'valid'); GlobalAveragePooling2D ==
    AveragePooling2D(pool=(cells, cells), 'valid'); every later Dense == 1x1 Conv2D. The window step is the
    stride of that first (window-sized) op, so the output is the score map at the grid's positions.
    """
    cells_h, cells_w, channels = head.input_shape[1:]
    if cells_h is None or cells_w is None:
        raise ValueError(f"head {head.name!r}: input {head.input_shape} has no fixed window size in cells")
    features = keras.Input((None, None, channels), name="feature_map")
    x = features
    # A functional model holds only the layers on its input-to-output paths, and every layer accepted
    # below takes one input, so the head is a single chain in `head.layers` order.
    chain = [layer for layer in head.layers if not isinstance(layer, (keras.layers.InputLayer, *_INERT))]
    windowed = False  # has each (cells, cells) window been reduced to one vector per position yet?
    flattened = False  # a Flatten waits for the Dense that becomes the window-sized convolution
    for layer in chain:
        if isinstance(layer, layers.Flatten) and not windowed and not flattened:
            flattened = True
        elif isinstance(layer, layers.Dense) and (flattened or windowed):
            kernel, *bias = layer.get_weights()
            size = (cells_h, cells_w) if flattened else (1, 1)
            conv = layers.Conv2D(
                layer.units,
                size,
                strides=step if flattened else 1,
                activation=layer.activation,
                use_bias=layer.use_bias,
                name=f"{layer.name}_conv",
            )
            x = conv(x)  # (1, h, w, .) -> (1, rows, cols, units)
            # Flatten orders a window's values (y, x, channel), the same order as a conv kernel's first axes.
            conv.set_weights([kernel.reshape(*size, -1, layer.units), *bias])
            flattened, windowed = False, True
        elif isinstance(layer, layers.GlobalAveragePooling2D) and not windowed and not flattened:
            x = layers.AveragePooling2D((cells_h, cells_w), strides=step, name=f"{layer.name}_pool")(x)
            windowed = True  # (1, h, w, C) -> (1, rows, cols, C)
        elif isinstance(layer, _ELEMENTWISE) and windowed:
            x = layer(x)
        else:
            raise ValueError(
                f"head {head.name!r}: cannot re-express layer {layer.name!r} ({type(layer).__name__}) as a "
                "convolution; the dense strategy supports Flatten/GlobalAveragePooling2D + Dense heads (use "
                "detection.strategy: feature_crops)"
            )
    if not windowed:
        raise ValueError(
            f"head {head.name!r}: no Flatten + Dense or GlobalAveragePooling2D reduces the window; the dense "
            "strategy cannot re-express it (use detection.strategy: feature_crops)"
        )
    return keras.Model(features, x, name=f"{head.name}_dense")
