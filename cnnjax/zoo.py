"""Named architectures: the five seed questions' networks and classic references.

Each entry reproduces a published Keras model exactly, so `cnnjax summary NAME` prints the
numbers people compare against (pinned in tests/test_zoo.py).
"""

from __future__ import annotations

from collections.abc import Callable

from cnnjax.spec import (
    AvgPool,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    NetSpec,
    SpecError,
    sequential,
)

MNIST = (28, 28, 1)


def fashion_cnn() -> NetSpec:
    """Seed 000: the Fashion-MNIST convnet of the Coursera course (113,386 params)."""
    return sequential(
        MNIST,
        Conv(32, 3, activation="relu"),
        MaxPool(2),
        Conv(32, 3, activation="relu"),
        MaxPool(2),
        Flatten(),
        Dense(128, "relu"),
        Dense(10, "softmax"),
        name="fashion_cnn",
    )


def fashion_dense() -> NetSpec:
    """Seed 000's baseline without convolutions: Flatten, Dense(128), Dense(10)."""
    return sequential(
        MNIST, Flatten(), Dense(128, "relu"), Dense(10, "softmax"), name="fashion_dense"
    )


def fashion_cnn_nopool() -> NetSpec:
    """Seed 000's convolutions without the pooling layers."""
    return sequential(
        MNIST,
        Conv(32, 3, activation="relu"),
        Conv(32, 3, activation="relu"),
        Flatten(),
        Dense(128, "relu"),
        Dense(10, "softmax"),
        name="fashion_cnn_nopool",
    )


def chollet_mnist() -> NetSpec:
    """Seed 001: Chollet's MNIST convnet; last conv (3, 3, 64) with 36,928 params, 93,322 total."""
    return sequential(
        MNIST,
        Conv(32, 3, activation="relu"),
        MaxPool(2),
        Conv(64, 3, activation="relu"),
        MaxPool(2),
        Conv(64, 3, activation="relu"),
        Flatten(),
        Dense(64, "relu"),
        Dense(10, "softmax"),
        name="chollet_mnist",
    )


def chollet_nopool_base() -> NetSpec:
    """Seed 002: Chollet's conv base without pooling: 55,744 params, receptive field 7."""
    return sequential(
        MNIST,
        Conv(32, 3, activation="relu"),
        Conv(64, 3, activation="relu"),
        Conv(64, 3, activation="relu"),
        name="chollet_nopool_base",
    )


def chollet_nopool() -> NetSpec:
    """Seed 002 with a classifier: 22x22x64 = 30,976 values into Dense(512) (15.9M params)."""
    base = chollet_nopool_base()
    return NetSpec(
        base.input_shape,
        (*base.layers, Flatten(), Dense(512, "relu"), Dense(10, "softmax")),
        "chollet_nopool",
    )


def first_conv3x3x64() -> NetSpec:
    """Seed 003: Conv2D(64, (3, 3)) on 28x28x1 = 640 params."""
    return sequential(MNIST, Conv(64, 3, activation="relu"), name="first_conv3x3x64")


def first_conv7x7x32() -> NetSpec:
    """Seed 003: Conv2D(32, (7, 7)) on 28x28x1 = 1,600 params."""
    return sequential(MNIST, Conv(32, 7, activation="relu"), name="first_conv7x7x32")


def pool224() -> NetSpec:
    """Seed 004 with max pooling: a 224x224x3 binary classifier of 8,861 params."""
    return sequential(
        (224, 224, 3),
        Conv(10, 3, activation="relu"),
        MaxPool(2),
        Conv(10, 3, activation="relu"),
        MaxPool(2),
        Conv(10, 3, activation="relu"),
        MaxPool(2),
        Flatten(),
        Dense(1, "sigmoid"),
        name="pool224",
    )


def nopool224() -> NetSpec:
    """Seed 004 without pooling: 477,341 params (its 2nd and 3rd convs have no activation)."""
    return sequential(
        (224, 224, 3),
        Conv(10, 3, activation="relu"),
        Conv(10, 3),
        Conv(10, 3),
        Flatten(),
        Dense(1, "sigmoid"),
        name="nopool224",
    )


def vgg16() -> NetSpec:
    """VGG16 at 224x224x3 with its top (Keras `VGG16(include_top=True)`): 138,357,544 params."""
    layers: list = []
    for filters, repeat in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        layers += [Conv(filters, 3, padding="same", activation="relu") for _ in range(repeat)]
        layers.append(MaxPool(2))
    layers += [Flatten(), Dense(4096, "relu"), Dense(4096, "relu"), Dense(1000, "softmax")]
    return sequential((224, 224, 3), *layers, name="vgg16")


def alexnet() -> NetSpec:
    """An AlexNet-style network on 227x227x3 (one tower, no LRN): 62,378,344 params."""
    return sequential(
        (227, 227, 3),
        Conv(96, 11, strides=4, activation="relu"),
        MaxPool(3, strides=2),
        Conv(256, 5, padding="same", activation="relu"),
        MaxPool(3, strides=2),
        Conv(384, 3, padding="same", activation="relu"),
        Conv(384, 3, padding="same", activation="relu"),
        Conv(256, 3, padding="same", activation="relu"),
        MaxPool(3, strides=2),
        Flatten(),
        Dense(4096, "relu"),
        Dropout(0.5),
        Dense(4096, "relu"),
        Dropout(0.5),
        Dense(1000, "softmax"),
        name="alexnet",
    )


def chollet_gap() -> NetSpec:
    """Seed 002's alternative head: Chollet's conv base, then global average pooling."""
    return sequential(
        MNIST,
        Conv(32, 3, activation="relu"),
        Conv(64, 3, activation="relu"),
        Conv(64, 3, activation="relu"),
        GlobalAvgPool(),
        Dense(10, "softmax"),
        name="chollet_gap",
    )


def chollet_strided() -> NetSpec:
    """Seed 002's other alternative: stride-2 convolutions in place of max pooling."""
    return sequential(
        MNIST,
        Conv(32, 3, activation="relu"),
        Conv(64, 3, strides=2, activation="relu"),
        Conv(64, 3, strides=2, activation="relu"),
        Flatten(),
        Dense(64, "relu"),
        Dense(10, "softmax"),
        name="chollet_strided",
    )


def avgpool_example() -> NetSpec:
    """A small net with average pooling and SAME padding (used by docs and tests)."""
    return sequential(
        MNIST,
        Conv(16, 5, padding="same", activation="relu"),
        AvgPool(2),
        Conv(32, 3, padding="same", activation="relu"),
        AvgPool(2),
        GlobalAvgPool(),
        Dense(10, "softmax"),
        name="avgpool_example",
    )


ZOO: dict[str, Callable[[], NetSpec]] = {
    f.__name__: f
    for f in (
        fashion_cnn,
        fashion_dense,
        fashion_cnn_nopool,
        chollet_mnist,
        chollet_nopool_base,
        chollet_nopool,
        chollet_strided,
        chollet_gap,
        first_conv3x3x64,
        first_conv7x7x32,
        pool224,
        nopool224,
        vgg16,
        alexnet,
        avgpool_example,
    )
}

SEED_MODELS = (
    "fashion_cnn",
    "chollet_mnist",
    "chollet_nopool_base",
    "first_conv3x3x64",
    "first_conv7x7x32",
    "pool224",
    "nopool224",
)


def get(name: str) -> NetSpec:
    """The zoo spec called `name`, or a SpecError listing the names."""
    try:
        return ZOO[name]()
    except KeyError:
        raise SpecError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}") from None


def describe(name: str) -> str:
    """The one-line docstring of a zoo model."""
    doc = ZOO[name].__doc__ or ""
    return doc.strip().splitlines()[0]
