"""Hypothesis strategies that generate valid and invalid network specs."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from cnnjax.spec import (
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    DepthwiseConv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    NetSpec,
    SpecError,
)

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
        return Conv(
            draw(st.integers(1, 4)), kernel, strides, padding, dilation, draw(st.booleans()), act
        )
    return DepthwiseConv(
        kernel, draw(st.integers(1, 2)), strides, padding, dilation, draw(st.booleans()), act
    )


@st.composite
def pool_layers(draw, kinds=("max", "avg")):
    kind = draw(st.sampled_from(kinds))
    window = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.sampled_from(["valid", "same"]))
    cls = MaxPool if kind == "max" else AvgPool
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
                st.just(BatchNorm()),
                st.builds(Dropout, st.sampled_from([0.0, 0.25, 0.5])),
            ),
            min_size=1,
            max_size=max_body,
        )
    )
    head = draw(
        st.sampled_from(
            [
                (),
                (Flatten(),),
                (GlobalAvgPool(),),
                (Flatten(), Dense(3, "relu"), Dense(2)),
                (GlobalAvgPool(), Dense(4, "softmax")),
            ]
        )
    )
    try:
        return NetSpec(shape, (*body, *head))
    except SpecError:
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
        return NetSpec(shape, tuple(body))
    except SpecError:
        assume(False)
