"""Hypothesis strategies that generate valid and invalid network specs, chains and graphs."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from cnnjax import spec

small = st.integers(1, 3)
paddings = st.one_of(
    st.sampled_from(["valid", "same"]),
    st.tuples(
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
    ),
)


@st.composite
def conv_layers(draw, linear: bool = False, positive_only: bool = False):
    kind = draw(st.sampled_from(["conv", "depthwise"]))
    kernel = (draw(small), draw(small))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(paddings)
    act = "linear" if linear else draw(st.sampled_from(["linear", "relu", "tanh"]))
    if kind == "conv":
        return spec.Conv(
            draw(st.integers(1, 4)), kernel, strides, padding, dilation, draw(st.booleans()), act
        )
    return spec.DepthwiseConv(
        kernel, draw(st.integers(1, 2)), strides, padding, dilation, draw(st.booleans()), act
    )


@st.composite
def pool_layers(draw, kinds=("max", "avg")):
    kind = draw(st.sampled_from(kinds))
    window = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.sampled_from(["valid", "same"]))
    cls = spec.MaxPool if kind == "max" else spec.AvgPool
    return cls(window, strides, padding)


@st.composite
def input_shapes(draw):
    return (draw(st.integers(5, 20)), draw(st.integers(5, 20)), draw(st.integers(1, 3)))


@st.composite
def valid_specs(draw, max_body: int = 4):
    """Any valid spec: a body of conv / pool / norm / dropout layers, then an optional head."""
    shape = draw(input_shapes())
    body = draw(
        st.lists(
            st.one_of(
                conv_layers(),
                pool_layers(),
                st.just(spec.BatchNorm()),
                st.builds(spec.Dropout, st.sampled_from([0.0, 0.25, 0.5])),
            ),
            min_size=1,
            max_size=max_body,
        )
    )
    head = draw(
        st.sampled_from(
            [
                (),
                (spec.Flatten(),),
                (spec.GlobalAvgPool(),),
                (spec.Flatten(), spec.Dense(3, "relu"), spec.Dense(2)),
                (spec.GlobalAvgPool(), spec.Dense(4, "softmax")),
            ]
        )
    )
    try:
        return spec.NetSpec(shape, (*body, *head))
    except spec.SpecError:
        assume(False)


@st.composite
def linear_rf_specs(draw, with_max_pool: bool = False):
    """Purely spatial specs of linear convolutions and average pools (the receptive-field law)."""
    shape = (draw(st.integers(9, 24)), draw(st.integers(9, 24)), draw(st.integers(1, 2)))
    kinds = ("avg", "max") if with_max_pool else ("avg",)
    body = draw(
        st.lists(st.one_of(conv_layers(linear=True), pool_layers(kinds)), min_size=1, max_size=4)
    )
    try:
        return spec.NetSpec(shape, tuple(body))
    except spec.SpecError:
        assume(False)


# --------------------------------------------------------------------------- graphs


@st.composite
def aligned_layers(draw, strides=(1, 1), linear: bool = False, channels: int | None = None):
    """A conv, depthwise conv or average pool whose padding keeps the centre offset: odd
    (dilated) kernel, symmetric padding of half of it, so paths stay aligned at any stride."""
    kind = draw(st.sampled_from(["conv", "depthwise", "avg"]))
    k = (draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 3])))
    if kind == "avg":
        return spec.AvgPool(k, strides, ((k[0] // 2,) * 2, (k[1] // 2,) * 2))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = ((d[0] * (k[0] // 2),) * 2, (d[1] * (k[1] // 2),) * 2)
    act = "linear" if linear else draw(st.sampled_from(["linear", "relu"]))
    if kind == "conv" or channels is not None:
        filters = channels if channels is not None else draw(st.integers(1, 4))
        return spec.Conv(filters, k, strides, pad, d, draw(st.booleans()), act)
    return spec.DepthwiseConv(k, draw(st.integers(1, 2)), strides, pad, d, draw(st.booleans()), act)


@st.composite
def aligned_paths(draw, strides, linear: bool = False, depth: int = 1, min_size: int = 1):
    """A path of aligned layers (maybe a nested block) whose strides multiply to `strides`."""
    n = draw(st.integers(min_size, 3))
    if n == 0:
        return []
    where = draw(st.integers(0, n - 1))  # the one layer that carries the stride
    path = []
    for i in range(n):
        s = strides if i == where else (1, 1)
        if depth > 0 and s == (1, 1) and draw(st.integers(0, 3)) == 0:
            path.append(draw(blocks(linear=linear, depth=depth - 1)))
        else:
            path.append(draw(aligned_layers(s, linear)))
    return path


@st.composite
def blocks(draw, linear: bool = False, depth: int = 1):
    """An aligned residual or concat block (nestable): every path ends on the same grid."""
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if draw(st.booleans()):
        main = draw(aligned_paths(strides, linear, depth))
        channels = draw(st.integers(1, 4))
        main.append(draw(aligned_layers((1, 1), linear, channels=channels)))
        # The shortcut projects to the main path's channels and stride (a 1x1 conv).
        shortcut = [spec.Conv(channels, 1, strides, use_bias=draw(st.booleans()))]
        act = "linear" if linear else draw(st.sampled_from(["linear", "relu"]))
        return spec.Residual(main, shortcut, act)
    n = draw(st.integers(1, 3))
    branches = [draw(aligned_paths(strides, linear, depth)) for _ in range(n)]
    if strides == (1, 1) and draw(st.booleans()):
        branches.append([])  # an identity branch (DenseNet style)
    return spec.Concat(*branches)


@st.composite
def graph_specs(draw, linear: bool = False, head: bool = True):
    """Valid specs with at least one aligned residual or concat block, maybe nested."""
    shape = (draw(st.integers(6, 16)), draw(st.integers(6, 16)), draw(st.integers(1, 3)))
    body = draw(
        st.lists(st.one_of(blocks(linear), aligned_layers((1, 1), linear)), min_size=1, max_size=3)
    )
    body.append(draw(blocks(linear)))
    if not linear and draw(st.booleans()):
        body.insert(draw(st.integers(0, len(body))), spec.BatchNorm())
    tail = draw(
        st.sampled_from(
            [(), (spec.GlobalAvgPool(), spec.Dense(3)), (spec.Flatten(), spec.Dense(2))]
        )
    )
    try:
        return spec.NetSpec(shape, (*body, *(tail if head else ())))
    except spec.SpecError:
        assume(False)


@st.composite
def misaligned_specs(draw):
    """Specs with one block whose paths land on the same shape but different centre offsets:
    an odd kernel padded on one side only, beside an identity or 1x1 path."""
    c = draw(st.integers(1, 3))
    shape = (draw(st.integers(6, 14)), draw(st.integers(6, 14)), c)
    k = draw(st.sampled_from([3, 5]))
    lopsided = spec.Conv(c, k, 1, ((0, k - 1), (0, k - 1)))
    other = draw(st.sampled_from([[], [spec.Conv(c, 1)]]))
    if draw(st.booleans()):
        block = spec.Residual([lopsided], other, "relu")
    else:
        block = spec.Concat(other, [lopsided])
    prefix = draw(st.lists(aligned_layers((1, 1), channels=c), max_size=2))
    return spec.NetSpec(shape, (*prefix, block))
