"""Networks written in plain Flax, the way users write them, for the traced-report tests.

`CNN` is the network of Flax's MNIST example; `ResNet18` follows Flax's ImageNet example
(a `ResNetBlock` with a 1x1 projection shortcut, batch norm, a 7x7 stem and a 3x3 max pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax.numpy as jnp


class CNN(nn.Module):
    """Flax's MNIST example network."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(features=32, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.Conv(features=64, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(features=256)(x)
        x = nn.relu(x)
        return nn.Dense(features=10)(x)


class ResNetBlock(nn.Module):
    filters: int
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x, train: bool = False):
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        residual = x
        y = nn.Conv(self.filters, (3, 3), self.strides, padding=((1, 1), (1, 1)), use_bias=False)(x)
        y = norm()(y)
        y = nn.relu(y)
        y = nn.Conv(self.filters, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)(y)
        y = norm()(y)
        if residual.shape != y.shape:
            residual = nn.Conv(self.filters, (1, 1), self.strides, use_bias=False, name="proj")(
                residual
            )
            residual = norm(name="proj_bn")(residual)
        return nn.relu(residual + y)


class ResNet18(nn.Module):
    num_classes: int = 1000
    stage_sizes: Sequence[int] = (2, 2, 2, 2)

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(64, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False, name="conv_init")(
            x
        )
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name="bn_init")(
            x
        )
        x = nn.relu(x)
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for i, blocks in enumerate(self.stage_sizes):
            for j in range(blocks):
                strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                x = ResNetBlock(64 * 2**i, strides)(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


class AvgCircular(nn.Module):
    """Average pooling, circular padding and an explicit `jnp.pad`: every field is full."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3), padding="CIRCULAR")(x)
        x = nn.avg_pool(x, (2, 2), (2, 2))
        x = jnp.pad(x, ((0, 0), (2, 1), (1, 2), (0, 0)))
        x = nn.Conv(4, (5, 3), strides=(2, 1), padding="VALID")(x)
        return nn.avg_pool(x, (3, 3), (1, 1), padding="SAME")


class NCHWNet(nn.Module):
    """A channels-first network: lax convolutions with NCHW dimension numbers."""

    @nn.compact
    def __call__(self, x):
        import jax

        k = self.param("kernel", nn.initializers.lecun_normal(), (4, x.shape[1], 5, 5))
        y = jax.lax.conv_general_dilated(
            x, k, (2, 2), ((1, 1), (2, 2)), dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        k2 = self.param("kernel2", nn.initializers.lecun_normal(), (4, 4, 3, 3))
        return jax.lax.conv_general_dilated(
            y, k2, (1, 1), "VALID", rhs_dilation=(2, 2), dimension_numbers=("NCHW", "OIHW", "NCHW")
        )


class CumsumNet(nn.Module):
    """A cumulative sum over rows: no window describes it, so the analysis stops there."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3), name="before")(x)
        x = jnp.cumsum(x, axis=1)
        return nn.Conv(4, (3, 3), name="after")(x)
