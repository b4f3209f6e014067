"""The hand-written reference checked against central finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

from backends.numpy.ops import ACTIVATIONS, LOSSES
from harness.cases.model import LOSSES as LOSS_DEFAULTS

STEP = 1e-6
# Points away from the kinks of relu, leaky_relu and elu, where a finite difference straddles two slopes.
POINTS = np.array([-3.1, -0.7, -0.05, 0.03, 0.4, 1.7, 4.2])


def central_difference(f, x: np.ndarray) -> np.ndarray:
    return (f(x + STEP) - f(x - STEP)) / (2 * STEP)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_derivative_matches_finite_difference(name):
    activation = ACTIVATIONS[name]
    _, derivative = activation(POINTS)
    numeric = central_difference(lambda z: activation(z)[0], POINTS)
    np.testing.assert_allclose(derivative, numeric, rtol=1e-7, atol=1e-9)


def test_kinks_use_pytorchs_derivative():
    zero = np.zeros(1)
    assert ACTIVATIONS["relu"](zero)[1][0] == 0.0
    assert ACTIVATIONS["leaky_relu"](zero)[1][0] == 0.01


def _loss_inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    if name == "bce":
        return rng.uniform(0.1, 0.9, (3, 2)), rng.uniform(0, 1, (3, 2))
    if name == "cross_entropy":
        targets = rng.uniform(0, 1, (3, 4))
        return rng.normal(size=(3, 4)), targets / targets.sum(axis=1, keepdims=True)
    return rng.normal(size=(3, 2)), rng.normal(size=(3, 2))


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_gradient_matches_finite_difference(name):
    output, target = _loss_inputs(name)
    args = {"delta": 0.5} if name == "huber" else dict(LOSS_DEFAULTS[name])
    _, gradient = LOSSES[name](output, target, args)
    numeric = np.zeros_like(output)
    for index in np.ndindex(output.shape):
        bump = np.zeros_like(output)
        bump[index] = STEP
        numeric[index] = (
            LOSSES[name](output + bump, target, args)[0]
            - LOSSES[name](output - bump, target, args)[0]
        ) / (2 * STEP)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_the_references_mean_is_numpys_mean_bit_for_bit(dtype):
    """The losses' fast mean must not move a single bit from ``ndarray.mean``."""
    from backends.numpy.eager import numpy_dtype
    from backends.numpy.ops import _mean

    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 7, 12, 33, 1000):
        for _ in range(100):
            scale = 10 ** rng.uniform(-6, 4)
            x = (rng.standard_normal((size, 1)) * scale).astype(numpy_dtype(dtype))
            expected, got = x.mean(), _mean(x)
            assert got.dtype == expected.dtype
            assert np.asarray(got).tobytes() == np.asarray(expected).tobytes(), (size, x.ravel())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_a_converted_constant_gives_the_bits_of_a_python_operand(dtype):
    """``constants`` stands in for Python numbers in the reference's operations; the results
    (values and dtype, which is float32 where a Python float meets bfloat16) must not move."""
    from backends.numpy.eager import numpy_dtype
    from backends.numpy.ops import constants

    rng = np.random.default_rng(11)
    x = (rng.standard_normal(257) * 10 ** rng.uniform(-3, 3, 257)).astype(numpy_dtype(dtype))
    values = [
        0,
        1,
        -1,
        2,
        7,
        1000,
        0.1,
        0.05,
        1e-4,
        0.9,
        1 - 0.9,
        *map(float, rng.uniform(-5, 5, 20)),
    ]
    operations = [np.multiply, np.add, np.subtract, np.divide, np.minimum, np.copysign]
    for value in values:
        (converted,) = constants(x.dtype, value)
        for operation in operations:
            for expected, got in [
                (operation(x, value), operation(x, converted)),
                (operation(value, x), operation(converted, x)),
            ]:
                assert got.dtype == expected.dtype, (operation, value)
                assert got.tobytes() == expected.tobytes(), (operation, value)


def test_the_references_matrix_product_is_matmul_bit_for_bit():
    """``ndarray.dot`` stands in for ``@`` in NumPy's own dtypes; bfloat16 keeps ``@``."""
    from backends.numpy.eager import matrix_product, numpy_dtype

    rng = np.random.default_rng(5)
    for dtype in ("float16", "float32", "float64", "bfloat16"):
        product = matrix_product(numpy_dtype(dtype))
        for batch, fan_in, fan_out in [(1, 1, 1), (3, 7, 2), (8, 33, 16), (17, 100, 64)]:
            a = rng.standard_normal((batch, fan_in)).astype(numpy_dtype(dtype))
            weight = rng.standard_normal((fan_out, fan_in)).astype(numpy_dtype(dtype))
            delta = rng.standard_normal((batch, fan_out)).astype(numpy_dtype(dtype))
            for left, right in [(a, weight.T), (delta.T, a), (delta, weight)]:
                expected, got = left @ right, product(left, right)
                assert got.dtype == expected.dtype, (dtype, left.shape, right.shape)
                assert got.tobytes() == expected.tobytes(), (dtype, left.shape, right.shape)


@pytest.mark.parametrize(
    "optimizer", ["sgd", "sgd-momentum", "adam", "adamw", "rmsprop", "adagrad"]
)
def test_the_reference_never_writes_into_parameters_it_handed_out(optimizer, seed_case):
    """``NumpyModel.parameters`` hands out its own arrays, uncopied: later steps must make new
    arrays rather than update those in place, or a recorded step would change afterwards."""
    import dataclasses

    from backends.numpy.eager import NumpyModel
    from harness.cases.inputs import make_inputs
    from harness.cases.model import OPTIMIZERS, Optimizer

    name, _, variant = optimizer.partition("-")
    args = {**OPTIMIZERS[name], "lr": 0.1, "weight_decay": 0.01}
    if variant == "momentum":
        args["momentum"] = 0.9
    case = dataclasses.replace(seed_case, optimizer=Optimizer(name, args))
    model = NumpyModel(case, make_inputs(case))
    model.train_step()
    handed_out = model.parameters()
    kept = {key: value.copy() for key, value in handed_out.items()}
    for _ in range(3):
        model.train_step()
        model.forward()
    for key, value in handed_out.items():
        assert value.tobytes() == kept[key].tobytes(), key
    assert all(model.params[key] is not handed_out[key] for key in handed_out)
