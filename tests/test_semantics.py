"""Each switch of the reference (backends/numpy/semantics.py) computes the behaviour it names."""

from __future__ import annotations

import dataclasses
import math

import ml_dtypes
import numpy as np
import pytest
from support import CASES

from backends.numpy.eager import NumpyBackend
from backends.numpy.ops import Optimizer, activation, loss
from backends.numpy.semantics import PYTORCH, SWITCH_TYPES, Semantics
from harness.cases.inputs import make_inputs
from harness.cases.loader import load_cases

G = np.array([0.3, -0.02])
P = np.array([0.5, -0.25])


def one_step(name: str, args: dict, semantics: Semantics, p=P, g=G, steps: int = 1) -> np.ndarray:
    optimizer = Optimizer(name, args, semantics)
    params = {"w": p}
    for _ in range(steps):
        optimizer.step(params, {"w": g})
    return params["w"]


def test_every_switch_has_a_type_and_the_default_is_pytorch():
    assert set(SWITCH_TYPES) == {f.name for f in dataclasses.fields(Semantics)}
    assert Semantics() == PYTORCH and PYTORCH.describe() == "none"


def test_eps_inside_the_square_root():
    args = {"lr": 0.1, "alpha": 0.9, "eps": 1e-2, "momentum": 0.0, "centered": False}
    args["weight_decay"] = 0.0
    v = 0.1 * G * G
    expected = P - 0.1 * G / np.sqrt(v + 1e-2)
    assert np.allclose(one_step("rmsprop", args, Semantics(eps_inside_sqrt=True)), expected)
    assert not np.allclose(one_step("rmsprop", args, PYTORCH), expected)


def test_epsilon_hat_adam():
    args = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-3, "weight_decay": 0.0}
    m, v = 0.1 * G, 0.001 * G * G
    expected = P - 0.01 * math.sqrt(0.001) / 0.1 * m / (np.sqrt(v) + 1e-3)
    assert np.allclose(one_step("adam", args, Semantics(epsilon_hat=True)), expected)
    assert not np.allclose(one_step("adam", args, PYTORCH), expected)


def test_decoupled_weight_decay_shrinks_the_parameter_before_the_update():
    args = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": True, "weight_decay": 0.5}
    decoupled = one_step("sgd", args, Semantics(decoupled_weight_decay=True))
    shrunk = P - P * 0.5 * 0.1
    assert np.allclose(decoupled, shrunk - 0.1 * (G + 0.9 * G))
    coupled = G + 0.5 * P
    assert np.allclose(one_step("sgd", args, PYTORCH), P - 0.1 * (coupled + 0.9 * coupled))


def test_bce_clip_caps_the_loss_and_zeroes_the_clipped_gradient():
    o, y = np.array([[1e-9], [0.5]]), np.array([[1.0], [1.0]])
    value, grad = loss("bce", Semantics(bce_clip=1e-7))(o, y, {})
    assert value == pytest.approx((-math.log(1e-7) - math.log(0.5)) / 2)
    assert grad[0, 0] == 0 and grad[1, 0] != 0
    assert loss("bce", PYTORCH)(o, y, {})[0] > value


def test_bce_from_logits_takes_the_loss_from_the_pre_activation():
    case = load_cases([str(CASES / "seed.yaml")])[0]
    case = dataclasses.replace(case, loss=dataclasses.replace(case.loss, name="bce"))
    inputs = make_inputs(case)
    logits = NumpyBackend(Semantics(bce_from_logits=True)).run(case, inputs)
    plain = NumpyBackend().run(case, inputs)
    assert logits.losses[0] == pytest.approx(float(plain.losses[0]), rel=1e-6)
    assert logits.grads[0]["layers.1.bias"] == pytest.approx(plain.grads[0]["layers.1.bias"], 1e-5)


def test_leaky_relu_slope_at_zero_and_softplus_threshold():
    z = np.array([0.0, -1.0, 25.0])
    assert activation("leaky_relu", Semantics(leaky_relu_slope_at_zero=1.0))(z)[1][0] == 1.0
    assert activation("leaky_relu")(z)[1][0] == 0.01
    value, slope = activation("softplus", Semantics(softplus_threshold=20.0))(z)
    assert value[2] == 25.0 and slope[2] == 1.0
    assert activation("softplus")(z)[1][2] < 1.0


def test_float32_constants_round_what_keras_casts():
    args = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.05}
    rounded = one_step("sgd", args, Semantics(float32_constants=True), steps=2)
    momentum, decay = float(np.float32(0.9)), float(np.float32(0.05))
    exact = one_step("sgd", {**args, "momentum": momentum, "weight_decay": decay}, PYTORCH, steps=2)
    assert np.array_equal(rounded, exact)
    # In bfloat16, beta_2 = 0.999 casts to 1.0: epsilon-hat Adam takes no step at all.
    bfloat16 = np.dtype(ml_dtypes.bfloat16)
    adam = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-4, "weight_decay": 0.0}
    keras = Semantics(epsilon_hat=True, float32_constants=True)
    start = P.astype(bfloat16)
    after = one_step("adam", adam, keras, p=start, g=G.astype(bfloat16), steps=3)
    assert np.array_equal(after.astype(np.float64), start.astype(np.float64))


def test_second_moment_in_float32_rounds_once():
    adam = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-4, "weight_decay": 0.0}
    # (1 - b2)·g² among float16's subnormals: rounding (1 - b2)·g first moves the result.
    g = np.array([0.02113, 0.03662, 0.04263, 0.04852], dtype=np.float16)
    optimizer = Optimizer("adam", adam, Semantics(second_moment_in_float32=True))
    optimizer.step({"w": np.full(4, 0.5, np.float16)}, {"w": g})
    once = (0.001 * g.astype(np.float32) * g.astype(np.float32)).astype(np.float16)
    assert np.array_equal(optimizer.state["w"]["v"], once)
    # The reference's own float16 Adam is torch's addcmul_, which rounds once as well;
    # rounding (1 - b2)·g first would move the result.
    plain = Optimizer("adam", adam)
    plain.step({"w": np.full(4, 0.5, np.float16)}, {"w": g})
    assert np.array_equal(plain.state["w"]["v"], once)
    assert not np.array_equal((0.001 * g) * g, once)


def test_compute_dtype_runs_a_float64_case_in_float32():
    case = load_cases([str(CASES / "seed.yaml")])[0]
    case = dataclasses.replace(case, dtype="float64")
    trace = NumpyBackend(Semantics(compute_dtype="float32")).run(case, make_inputs(case))
    assert trace.output.dtype == np.float32


ADAM = {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7, "weight_decay": 0.0}


def test_abs_slope_at_zero_gives_a_zero_residual_the_slope():
    o, y = np.array([[0.5, 1.0]]), np.array([[0.5, 0.0]])
    assert loss("mae", Semantics(abs_slope_at_zero=1.0))(o, y, {})[1].tolist() == [[0.5, 0.5]]
    assert loss("mae")(o, y, {})[1].tolist() == [[0.0, 0.5]]


def test_merged_adam_divisions_underflow_in_float16():
    # A zero gradient: (0 / 0.1) / eps is 0, but 0.1 * eps (1.2e-8) underflows in float16.
    p, g = np.array([0.25], np.float16), np.array([0.0], np.float16)
    merged = one_step("adam", ADAM, Semantics(adam_divisions_merged=True), p=p, g=g)
    assert np.isnan(merged[0])
    assert one_step("adam", ADAM, PYTORCH, p=p, g=g)[0] == p[0]


def test_moments_by_difference_square_the_gradient_first():
    # g = 256: g * g overflows float16 (max 65504), 0.001 * g * g does not.
    p, g = np.array([0.25], np.float16), np.array([256.0], np.float16)
    args = {**ADAM, "eps": 1e-3}
    # v is inf after one step (m / inf: no move), and inf - inf is NaN in the next.
    keras = Semantics(moments_by_difference=True)
    assert one_step("adam", args, keras, p=p, g=g)[0] == p[0]
    assert np.isnan(one_step("adam", args, keras, p=p, g=g, steps=2)[0])
    assert np.isfinite(one_step("adam", args, PYTORCH, p=p, g=g, steps=2)[0])
    # In float64 the two forms are the same algorithm: equal within rounding.
    by_difference = one_step("adam", args, Semantics(moments_by_difference=True), steps=3)
    assert np.allclose(by_difference, one_step("adam", args, PYTORCH, steps=3), rtol=1e-12)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("adam", ADAM),
        ("adam", {**ADAM, "lr": 0.1, "eps": 1e-4, "weight_decay": 0.1}),
        ("adamw", {**ADAM, "lr": 0.1, "eps": 1e-3, "weight_decay": 0.01}),
        (
            "adagrad",
            {"lr": 0.1, "eps": 1e-7, "weight_decay": 0.0, "initial_accumulator_value": 0.0},
        ),
    ],
)
def test_float16_steps_are_torch_kernels_bit_for_bit(name, args):
    """Gradients whose moments fall into float16's subnormals, where the order of the
    operations and torch's float32 arithmetic inside each in-place op decide the result."""
    torch = pytest.importorskip("torch")
    grads = np.array([1.2207e-4, -6.1035e-5, 3.0e-3, 0.0, 256.0, -0.5], np.float16)
    p0 = np.array([0.5, -0.25, 1.0, 0.0, 0.125, 2.0], np.float16)
    reference = one_step(name, args, PYTORCH, p=p0, g=grads, steps=3)
    weight = torch.nn.Parameter(torch.tensor(p0))
    kwargs = {k: v for k, v in args.items() if k != "initial_accumulator_value"}
    if name == "adagrad":
        kwargs["initial_accumulator_value"] = args["initial_accumulator_value"]
    classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adagrad": torch.optim.Adagrad}
    optimizer = classes[name]([weight], foreach=False, **kwargs)
    for _ in range(3):
        weight.grad = torch.tensor(grads)
        optimizer.step()
    assert np.array_equal(reference.view(np.int16), weight.detach().numpy().view(np.int16))


def test_elu_derivative_from_output_cancels_near_minus_one():
    z = np.array([-16.0, 0.5], np.float32)
    from_output = activation("elu", Semantics(elu_derivative_from_output=True))(z)[1]
    assert from_output[0] == np.float32(np.expm1(np.float32(-16.0))) + np.float32(1)
    assert from_output[1] == 1
    exact = activation("elu")(z)[1]
    assert exact[0] == np.exp(np.float32(-16.0)) and abs(from_output[0] / exact[0] - 1) > 0.01


def test_huber_through_min_cancels_for_residuals_far_below_delta():
    e = np.full(3, -2.384185791015625e-07, np.float32)
    exact = loss("huber")(e, np.zeros(3, np.float32), {"delta": 1.0})[1]
    through_min = loss("huber", Semantics(huber_through_min=True))(
        e, np.zeros(3, np.float32), {"delta": 1.0}
    )[1]
    assert exact[0] == e[0] / 3
    assert through_min[0] == np.float32(-8.940697e-08)  # what jax.grad of optax's form gives
    large = np.array([2.0, -0.25], np.float64)  # one residual beyond delta, one well inside
    args = {"delta": 1.0}
    assert np.allclose(
        loss("huber", Semantics(huber_through_min=True))(large, 0 * large, args)[1],
        loss("huber")(large, 0 * large, args)[1],
        rtol=1e-15,
    )
