"""Named architectures: the five seed questions' networks and classic references.

Each entry reproduces a published model exactly (Keras, TF-Slim or torchvision, as its
docstring says), so `cnnjax summary NAME` prints the numbers people compare against (pinned
in tests/test_zoo.py): parameter counts, and for ResNet / Inception the receptive fields that
google-research's receptive_field library publishes.
"""

from __future__ import annotations

from collections.abc import Callable

from cnnjax.spec import (
    Activation,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
    NetSpec,
    Residual,
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


# --------------------------------------------------------------------------- networks with branches


def _conv_bn(
    filters: int,
    kernel: int | tuple[int, int],
    strides: int = 1,
    padding: object = "same",
    *,
    relu: bool = True,
    bias: bool = False,
    epsilon: float = 1e-3,
) -> list[Layer]:
    """Conv (linear), batch norm, then an optional ReLU: the unit of every ResNet/Inception."""
    layers: list[Layer] = [
        Conv(filters, kernel, strides, padding, use_bias=bias),  # type: ignore[arg-type]
        BatchNorm(epsilon=epsilon),
    ]
    return [*layers, Activation("relu")] if relu else layers


def _pad(n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return ((n, n), (n, n))


def resnet50() -> NetSpec:
    """ResNet-50 as Keras Applications builds it: 25,636,712 params (53,120 non-trainable)."""
    eps = 1.001e-5

    def unit(filters: int, strides: int, project: bool) -> Residual:
        main = [
            *_conv_bn(filters, 1, strides, "valid", bias=True, epsilon=eps),
            *_conv_bn(filters, 3, 1, "same", bias=True, epsilon=eps),
            *_conv_bn(4 * filters, 1, 1, "valid", relu=False, bias=True, epsilon=eps),
        ]
        shortcut = (
            _conv_bn(4 * filters, 1, strides, "valid", relu=False, bias=True, epsilon=eps)
            if project
            else []
        )
        return Residual(main, shortcut, "relu")

    layers: list[Layer] = [
        *_conv_bn(64, 7, 2, _pad(3), bias=True, epsilon=eps),
        MaxPool(3, 2, _pad(1)),  # Keras pads zeros after a ReLU: the same as -inf padding
    ]
    for filters, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        layers += [unit(filters, stride if b == 0 else 1, b == 0) for b in range(blocks)]
    layers += [GlobalAvgPool(), Dense(1000, "softmax")]
    return sequential((224, 224, 3), *layers, name="resnet50")


def resnet_v1_50() -> NetSpec:
    """ResNet-50 v1 as TF-Slim builds it (stride 2 in the last unit of blocks 1-3): receptive
    field 483, effective stride 32, effective padding 239 at 224x224 after the last block."""

    def conv_same(filters: int, kernel: int, strides: int, relu: bool = True) -> list[Layer]:
        # slim's conv2d_same: SAME at stride 1, explicit symmetric padding at stride 2.
        pad: object = "same" if strides == 1 else _pad((kernel - 1) // 2)
        return _conv_bn(filters, kernel, strides, pad, relu=relu, epsilon=1e-5)

    def unit(depth: int, depth_in: int, strides: int) -> Residual:
        main = [
            *_conv_bn(depth // 4, 1, 1, epsilon=1e-5),
            *conv_same(depth // 4, 3, strides),
            *_conv_bn(depth, 1, 1, relu=False, epsilon=1e-5),
        ]
        if depth == depth_in:
            shortcut: list[Layer] = [MaxPool(1, strides)] if strides > 1 else []
        else:
            shortcut = _conv_bn(depth, 1, strides, relu=False, epsilon=1e-5)
        return Residual(main, shortcut, "relu")

    layers: list[Layer] = [*conv_same(64, 7, 2), MaxPool(3, 2, "same")]
    depth_in = 64
    for depth, units, stride in ((256, 3, 2), (512, 4, 2), (1024, 6, 2), (2048, 3, 1)):
        for u in range(units):
            layers.append(unit(depth, depth_in, stride if u == units - 1 else 1))
            depth_in = depth
    layers += [GlobalAvgPool(), Dense(1000, "softmax")]
    return sequential((224, 224, 3), *layers, name="resnet_v1_50")


def _basic_block(filters: int, strides: int, project: bool) -> Residual:
    """torchvision's BasicBlock: two 3x3 convs (padding 1) and a 1x1 projection when needed."""
    main = [
        *_conv_bn(filters, 3, strides, _pad(1), epsilon=1e-5),
        *_conv_bn(filters, 3, 1, _pad(1), relu=False, epsilon=1e-5),
    ]
    shortcut = _conv_bn(filters, 1, strides, "valid", relu=False, epsilon=1e-5) if project else []
    return Residual(main, shortcut, "relu")


def resnet18() -> NetSpec:
    """ResNet-18 in torchvision's layout: 11,689,512 trainable params at 1000 classes (batch
    norm's running mean and variance are the non-trainable rest)."""
    layers: list[Layer] = [*_conv_bn(64, 7, 2, _pad(3), epsilon=1e-5), MaxPool(3, 2, _pad(1))]
    channels = 64
    for filters, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers.append(_basic_block(filters, stride, stride != 1 or filters != channels))
        layers.append(_basic_block(filters, 1, False))
        channels = filters
    layers += [GlobalAvgPool(), Dense(1000, "softmax")]
    return sequential((224, 224, 3), *layers, name="resnet18")


def resnet_small() -> NetSpec:
    """A small ResNet for 28x28x1 (Fashion-MNIST): 3 stages of basic blocks, 16-32-64 filters."""
    layers: list[Layer] = [*_conv_bn(16, 3, 1, _pad(1), epsilon=1e-5)]
    channels = 16
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        layers.append(_basic_block(filters, stride, stride != 1 or filters != channels))
        channels = filters
    layers += [GlobalAvgPool(), Dense(10, "softmax")]
    return sequential(MNIST, *layers, name="resnet_small")


def inception_v3() -> NetSpec:
    """Inception v3 at 299x299x3 as TF-Slim builds it (to Mixed_7c, then a 1000-way head):
    receptive field 1311, effective stride 32, effective padding 618 at Mixed_7c."""

    def cb(filters: int, kernel: int | tuple[int, int], strides: int = 1, pad: str = "same"):
        return _conv_bn(filters, kernel, strides, pad)

    def pool_branch(filters: int) -> list[Layer]:
        return [AvgPool(3, 1, "same"), *cb(filters, 1)]

    def mixed_5(pool_filters: int, name: str) -> Concat:
        return Concat(
            cb(64, 1),
            [*cb(48, 1), *cb(64, 5)],
            [*cb(64, 1), *cb(96, 3), *cb(96, 3)],
            pool_branch(pool_filters),
            name=name,
        )

    def mixed_6(c: int, name: str) -> Concat:
        return Concat(
            cb(192, 1),
            [*cb(c, 1), *cb(c, (1, 7)), *cb(192, (7, 1))],
            [*cb(c, 1), *cb(c, (7, 1)), *cb(c, (1, 7)), *cb(c, (7, 1)), *cb(192, (1, 7))],
            pool_branch(192),
            name=name,
        )

    def mixed_7(name: str) -> Concat:
        return Concat(
            cb(320, 1),
            [*cb(384, 1), Concat(cb(384, (1, 3)), cb(384, (3, 1)))],
            [*cb(448, 1), *cb(384, 3), Concat(cb(384, (1, 3)), cb(384, (3, 1)))],
            pool_branch(192),
            name=name,
        )

    layers: list[Layer] = [
        *cb(32, 3, 2, "valid"),
        *cb(32, 3, 1, "valid"),
        *cb(64, 3),
        MaxPool(3, 2),
        *cb(80, 1, 1, "valid"),
        *cb(192, 3, 1, "valid"),
        MaxPool(3, 2),
        mixed_5(32, "mixed_5b"),
        mixed_5(64, "mixed_5c"),
        mixed_5(64, "mixed_5d"),
        Concat(
            cb(384, 3, 2, "valid"),
            [*cb(64, 1), *cb(96, 3), *cb(96, 3, 2, "valid")],
            [MaxPool(3, 2)],
            name="mixed_6a",
        ),
        mixed_6(128, "mixed_6b"),
        mixed_6(160, "mixed_6c"),
        mixed_6(160, "mixed_6d"),
        mixed_6(192, "mixed_6e"),
        Concat(
            [*cb(192, 1), *cb(320, 3, 2, "valid")],
            [*cb(192, 1), *cb(192, (1, 7)), *cb(192, (7, 1)), *cb(192, 3, 2, "valid")],
            [MaxPool(3, 2)],
            name="mixed_7a",
        ),
        mixed_7("mixed_7b"),
        mixed_7("mixed_7c"),
        GlobalAvgPool(),
        Dense(1000, "softmax"),
    ]
    return sequential((299, 299, 3), *layers, name="inception_v3")


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
        resnet_small,
        resnet18,
        resnet50,
        resnet_v1_50,
        inception_v3,
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
