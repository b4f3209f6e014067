"""The conformance kit: a correct adapter passes, each classic mistake fails in plain words."""

from __future__ import annotations

import pytest

from harness import conformance, registry
from harness.cli import main

WRONG = {
    "transposed_grad": "conformance_adapters:TransposedGradientBackend",
    "sigmoid_slope": "conformance_adapters:SigmoidSlopeBackend",
    "forgetful": "conformance_adapters:ForgetfulMomentumBackend",
    "overriding": "conformance_adapters:OverridingCapabilitiesBackend",
}


@pytest.fixture(autouse=True)
def wrong_adapters(monkeypatch):
    for name, target in WRONG.items():
        monkeypatch.setitem(registry.BUILTINS, name, target)


def results_of(name: str, *patterns: str) -> dict[str, conformance.CheckResult]:
    results, _ = conformance.check_adapter(name, patterns=patterns)
    return {r.check: r for r in results}


def test_the_reference_passes_every_check(capsys):
    assert main(["check-adapter", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    for check in ("naming", "non-square-mlp", "activation[gelu]", "loss[cross_entropy]"):
        assert any(line.startswith(check + " ") for line in out.splitlines()), check
    assert "0 failed" in out


def test_the_battery_covers_every_declared_option():
    names = [check.name for check in conformance.battery(registry.load_class("numpy"))]
    assert len(names) == len(set(names))
    for option in ("activation[silu]", "loss[huber]", "optimizer[adagrad]", "dtype[bfloat16]"):
        assert option in names
    assert "finite-difference" in names


EXPECTED_FAILURES = {
    "transposed kernel gradient": (
        "transposed_grad",
        "naming",
        "step 0: grad of layers.0.weight has shape (3, 5), expected (5, 3) (it is transposed",
    ),
    "sigmoid slope s instead of s(1-s), against the reference": (
        "sigmoid_slope",
        "activation[sigmoid]",
        "step 0 grad of layers.0.weight[0] is",
    ),
    "sigmoid slope s instead of s(1-s), against finite differences": (
        "sigmoid_slope",
        "finite-difference",
        "grad of layers.0.weight[0] is",
    ),
    "momentum not carried across steps": (
        "forgetful",
        "optimizer[sgd]",
        "step 1 param of layers.0.weight[0] is",
    ),
    "override that ignores declared capabilities": (
        "overriding",
        "capabilities",
        "dtype 'float16' is not declared, yet unsupported_reason() accepts the case",
    ),
}


@pytest.mark.parametrize(
    "adapter, check, message", EXPECTED_FAILURES.values(), ids=EXPECTED_FAILURES.keys()
)
def test_a_wrong_adapter_fails_naming_the_parameter_and_the_problem(adapter, check, message):
    result = results_of(adapter, check)[check]
    assert result.status == "fail"
    assert message in result.detail


def test_the_finite_difference_failure_says_backward_disagrees_with_forward():
    detail = results_of("sigmoid_slope", "finite-difference")["finite-difference"].detail
    assert "finite difference of the adapter's own loss" in detail
    assert "the backward pass does not match the forward pass" in detail


def test_a_check_that_does_not_involve_the_mistake_still_passes():
    # tanh hidden and identity output: the wrong sigmoid slope is never used.
    assert results_of("sigmoid_slope", "activation[tanh]")["activation[tanh]"].status == "pass"
