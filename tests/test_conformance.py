"""The conformance kit: a correct adapter passes, each classic mistake fails in plain words."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from fake_plugins import register
from support import ROOT

from backends import registry
from harness.cases.inputs import make_inputs
from harness.cases.model import OPTIMIZERS, Optimizer
from harness.cli import main
from harness.conformance import battery, cases, checks
from harness.verdict.known import load_known

WRONG = {
    "transposed_grad": "conformance_adapters:TransposedGradientBackend",
    "sigmoid_slope": "conformance_adapters:SigmoidSlopeBackend",
    "forgetful": "conformance_adapters:ForgetfulMomentumBackend",
    "overriding": "conformance_adapters:OverridingCapabilitiesBackend",
    "coarse64": "conformance_adapters:CoarseFloat64Backend",
    "transposed_square_grad": "conformance_adapters:TransposedSquareGradientBackend",
    "transposed_square_weight": "conformance_adapters:TransposedSquareWeightBackend",
    "undamped": "conformance_adapters:UndampedBackend",
    "no_nesterov": "conformance_adapters:NoNesterovBackend",
    "uncentered": "conformance_adapters:UncenteredBackend",
    "zero_accumulator": "conformance_adapters:ZeroAccumulatorBackend",
    "decoupled_adam": "conformance_adapters:DecoupledAdamBackend",
    "torch_adamw_for_adam": "conformance_adapters:TorchAdamWForAdamBackend",
    "eager_import": "eager_import_adapter:EagerImportBackend",
    "no_requires": "conformance_adapters:NoRequiresBackend",
    "no_dampening": "conformance_adapters:NoDampeningBackend",
    "float32_beta_powers": "conformance_adapters:Float32BetaPowersBackend",
}


@pytest.fixture(autouse=True)
def wrong_adapters(monkeypatch):
    register(monkeypatch, WRONG)


def results_of(name: str, *patterns: str, known=None) -> dict[str, checks.CheckResult]:
    results, _ = battery.check_adapter(name, patterns=patterns, known=known)
    return {r.check: r for r in results}


def known_file(tmp_path, backend: str, where: str) -> list:
    path = tmp_path / "known.yaml"
    path.write_text(
        "divergences:\n"
        f"  - id: {backend}-test-entry\n"
        f"    backend: {backend}\n"
        f"    where: {where}\n"
        "    max_rel_err: 10.0\n"
        "    measured: for the test\n"
        "    reason: a deliberate difference\n"
        "    source: tests/conformance_adapters.py\n",
        encoding="utf-8",
    )
    return load_known(path)


# Full tier: the whole battery on the reference (about 6 s); the planted bugs below stay quick.
@pytest.mark.full
def test_the_reference_passes_every_check(capsys):
    assert main(["check-adapter", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    for check in (
        "lazy-import",
        "naming",
        "non-square-mlp",
        "square-mlp",
        "activation[gelu]",
        "loss[cross_entropy]",
        "optimizer[adam+weight_decay]",
    ):
        assert any(line.startswith(check + " ") for line in out.splitlines()), check
    assert out.rstrip().endswith(" 0 failed")


def test_the_battery_covers_every_declared_option():
    names = [check.name for check in battery.battery(registry.load_class("numpy"))]
    assert len(names) == len(set(names))
    for option in ("activation[silu]", "loss[huber]", "optimizer[adagrad]", "dtype[bfloat16]"):
        assert option in names
    for check in ("lazy-import", "square-mlp", "finite-difference"):
        assert check in names
    for optimizer, variants in cases.OPTIMIZER_VARIANTS.items():
        for args in variants:
            assert cases.variant_name(optimizer, args) in names


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


def test_a_triaged_divergence_is_known_not_failed(tmp_path):
    known = known_file(tmp_path, "forgetful", "{optimizer.name: sgd}")
    result = results_of("forgetful", "optimizer[sgd]", known=known)["optimizer[sgd]"]
    assert result.status == "known"
    assert (
        "known divergence forgetful-test-entry (bounded, not verified: rel err <= 10 from the reference): a deliberate difference"
        in result.detail
    )


def test_a_triage_elsewhere_does_not_excuse_a_check(tmp_path):
    known = known_file(tmp_path, "forgetful", "{optimizer.name: adam}")
    assert results_of("forgetful", "optimizer[sgd]", known=known)["optimizer[sgd]"].failed


def test_a_coarse_float64_loss_fails_finite_differences_in_plain_words():
    result = results_of("coarse64", "finite-difference")["finite-difference"]
    assert result.failed
    assert "float64" in result.detail and "layers.0.weight" in result.detail


def test_a_known_coarse_float64_falls_back_to_float32_finite_differences(tmp_path):
    known = known_file(tmp_path, "coarse64", "{dtype: float64}")
    result = results_of("coarse64", "finite-difference", known=known)["finite-difference"]
    assert result.status == "known"
    assert "coarse64-test-entry" in result.detail
    assert result.detail.endswith("float32 finite differences agree")


def test_the_float32_fallback_still_catches_a_wrong_derivative(tmp_path):
    known = known_file(tmp_path, "sigmoid_slope", "{dtype: float64}")
    result = results_of("sigmoid_slope", "finite-difference", known=known)["finite-difference"]
    assert result.failed
    assert result.detail.startswith("float32: grad of layers.0.weight[0] is")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check-adapter", "pytorch"], "unknown backend 'pytorch'"),
        (["check-adapter", "numpy", "--check", "nothing*"], "no conformance check matches"),
    ],
    ids=["unknown-backend", "no-such-check"],
)
def test_bad_usage_is_exit_2_with_a_message(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_lazy_import_names_the_line_that_imports_the_framework():
    detail = results_of("eager_import", "lazy-import")["lazy-import"].detail
    source = (ROOT / "tests" / "eager_import_adapter.py").read_text(encoding="utf-8")
    line = source.splitlines().index(
        "import stand_in_framework  # the planted mistake: belongs in __init__"
    )
    assert f"eager_import_adapter.py:{line + 1})" in detail
    assert "not at module level" in detail


def test_lazy_import_passes_an_adapter_that_imports_its_framework_late():
    _needs_framework("torch")
    result = results_of("torch", "lazy-import")["lazy-import"]
    assert result.status == "pass"
    assert result.detail == "importing backends.torch.eager imports none of torch"


def test_lazy_import_does_not_blame_an_adapter_for_what_crossgrad_imports():
    result = results_of("numpy", "lazy-import")["lazy-import"]
    assert result.status == "pass"
    assert result.detail == "numpy is imported by crossgrad itself: nothing to look for"


def test_lazy_import_skips_an_adapter_without_requires():
    result = results_of("no_requires", "lazy-import")["lazy-import"]
    assert result.status == "skipped"
    assert "declares no `requires`" in result.detail


def test_lazy_import_reports_a_module_that_does_not_import_in_a_fresh_interpreter():
    numpy = registry.load_class("numpy")
    lost = type("LostBackend", (numpy,), {"__module__": "crossgrad_no_such_module"})
    kit = checks.Kit("lost", lost(), numpy(), [])
    result = checks.lazy_import(kit)
    assert result.failed
    assert result.detail == (
        "importing crossgrad_no_such_module in a fresh interpreter failed: "
        "ModuleNotFoundError: No module named 'crossgrad_no_such_module'"
    )


def test_the_square_network_has_square_weights_and_far_from_symmetric_gradients():
    case = cases.make_case("square", sizes=cases.SQUARE_SIZES)
    inputs = make_inputs(case)
    trace = registry.create("numpy").run(case, inputs)
    square = [n for n, v in inputs.params.items() if v.ndim == 2 and v.shape[0] == v.shape[1]]
    assert len(square) >= 2

    def asymmetry(a):
        return np.linalg.norm(a - a.T) / np.linalg.norm(a)

    for name in square:
        assert asymmetry(inputs.params[name]) > 0.5, name
        for grads in trace.grads:
            assert asymmetry(np.asarray(grads[name], dtype=np.float64)) > 0.5, name


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_the_battery_sets_every_argument_of_every_optimizer(optimizer):
    """Each argument of the vocabulary, away from its default, in optimizer[X] or a variant:
    an argument the vocabulary gains fails here until the kit sets it too."""
    defaults = OPTIMIZERS[optimizer]
    set_somewhere = {
        key
        for args in (cases.OPTIMIZER_ARGS[optimizer], *cases.OPTIMIZER_VARIANTS[optimizer])
        for key, value in args.items()
        if value != defaults[key]
    }
    assert set_somewhere == set(defaults)


VARIANT_ARGUMENTS = [
    (optimizer, args, key)
    for optimizer, variants in cases.OPTIMIZER_VARIANTS.items()
    for args in variants
    for key in args
]


@pytest.mark.parametrize(
    "optimizer, args, key",
    VARIANT_ARGUMENTS,
    ids=[f"{cases.variant_name(o, a)}-{k}" for o, a, k in VARIANT_ARGUMENTS],
)
def test_every_argument_a_check_sets_moves_the_parameters_far_beyond_the_tolerance(
    optimizer, args, key
):
    """Dropping one argument (the framework's default instead) changes some parameter by
    more than 1e-3 relative: a hundred times float32's tolerance, not a rounding matter."""
    reference = registry.create("numpy")
    case = cases.make_case("argument", optimizer=optimizer, optimizer_args=args)
    dropped = replace(
        case,
        optimizer=Optimizer(optimizer, {**case.optimizer.args, key: OPTIMIZERS[optimizer][key]}),
    )
    inputs = make_inputs(case)
    right, wrong = reference.run(case, inputs), reference.run(dropped, inputs)
    worst = max(
        np.max(np.abs(wrong.params[step][name] - value) / (np.abs(value) + 1e-3))
        for step, params in enumerate(right.params)
        for name, value in params.items()
    )
    assert worst > 1e-3


def test_an_argument_the_adapter_declines_skips_its_check():
    results = results_of("no_dampening", "optimizer[sgd*")
    skipped = results["optimizer[sgd+dampening]"]
    assert skipped.status == "skipped"
    assert "this framework's SGD has no dampening argument" in skipped.detail
    assert results["optimizer[sgd+nesterov+weight_decay]"].status == "pass"


def test_an_undeclared_optimizer_has_no_argument_checks():
    seed_only = type("SeedOnly", (registry.load_class("numpy"),), {"optimizers": ("sgd",)})
    names = [c.name for c in battery.battery(seed_only)]
    assert [n for n in names if n.startswith("optimizer[")] == [
        "optimizer[sgd]",
        "optimizer[sgd+dampening]",
        "optimizer[sgd+nesterov+weight_decay]",
    ]


NEW_CHECKS = ("lazy-import", "square-mlp", "optimizer[*+*]")


@pytest.mark.parametrize("adapter", ["numpy", "torch"])
def test_the_builtin_adapters_pass_the_newer_checks(adapter):
    _needs_framework(adapter)
    results = results_of(adapter, *NEW_CHECKS)
    assert len(results) == 2 + sum(map(len, cases.OPTIMIZER_VARIANTS.values()))
    assert {r.status for r in results.values()} == {"pass"}, results


@pytest.mark.full
def test_the_torch_adapter_passes_every_check(capsys):
    _needs_framework("torch")
    assert main(["check-adapter", "torch"]) == 0, capsys.readouterr().out


# One bug planted in each (tests/conformance_adapters.py): the check that must fail, the
# start of its first problem, and the checks to run in the default tier beside it, which
# must pass. The full tier runs the whole battery: only that check may fail.
PLANTED = {
    "adam weight decay applied decoupled, as AdamW": (
        "decoupled_adam",
        "optimizer[adam+weight_decay]",
        "step 0 param of layers.0.weight[0] is",
        "optimizer[adam*",
    ),
    "torch.optim.AdamW for adam with weight decay": (
        "torch_adamw_for_adam",
        "optimizer[adam+weight_decay]",
        "step 0 param of layers.0.weight[0] is",
        "optimizer[adam*",
    ),
    "square weight gradients transposed": (
        "transposed_square_grad",
        "square-mlp",
        "the whole grad is the reference's transposed",
        "*mlp",
    ),
    "square weights loaded without the kernel transpose": (
        "transposed_square_weight",
        "square-mlp",
        "the output is the reference's with the square weights layers.1.weight, "
        "layers.2.weight transposed",
        "*mlp",
    ),
    "sgd dampening ignored": (
        "undamped",
        "optimizer[sgd+dampening]",
        "step 1 param of layers.0.weight[0] is",  # the first step takes no dampening
        "optimizer[sgd*",
    ),
    "sgd nesterov ignored": (
        "no_nesterov",
        "optimizer[sgd+nesterov+weight_decay]",
        "step 0 param of layers.0.weight[0] is",
        "optimizer[sgd*",
    ),
    "rmsprop centered ignored": (
        "uncentered",
        "optimizer[rmsprop+alpha+centered+momentum+weight_decay]",
        "step 0 param of layers.0.weight[0] is",
        "optimizer[rmsprop*",
    ),
    "adagrad initial accumulator ignored": (
        "zero_accumulator",
        "optimizer[adagrad+initial_accumulator_value+weight_decay]",
        "step 0 param of layers.0.weight[0] is",
        "optimizer[adagrad*",
    ),
    "framework imported at module level": (
        "eager_import",
        "lazy-import",
        "importing eager_import_adapter imports stand_in_framework (at ",
        "registration",
    ),
}


def _needs_framework(adapter: str) -> None:
    reason = registry.load_class(adapter).unavailable_reason()
    if reason:
        pytest.skip(f"{adapter}: {reason}")


@pytest.mark.parametrize(
    "adapter, check, message, neighbours", PLANTED.values(), ids=PLANTED.keys()
)
def test_a_planted_bug_fails_its_check_and_no_other(adapter, check, message, neighbours):
    _needs_framework(adapter)
    results = results_of(adapter, check, neighbours)
    assert len(results) > 1
    assert {name for name, r in results.items() if r.status != "pass"} == {check}, results
    assert message in results[check].detail, results[check].detail


@pytest.mark.full  # the whole battery per planted bug: ~3 s each
@pytest.mark.parametrize(
    "adapter, check, message, neighbours", PLANTED.values(), ids=PLANTED.keys()
)
def test_a_planted_bug_fails_only_its_check_in_the_whole_battery(
    adapter, check, message, neighbours
):
    _needs_framework(adapter)
    results = results_of(adapter)
    assert {name for name, r in results.items() if r.status != "pass"} == {check}, results


def test_float32_bias_correction_passes_the_kit_without_a_known_entry():
    """The kit judges with the same magnitude rule as a run: keeping Adam's beta powers in
    float32 is rounding (the reference with that switch differs from the plain one)."""
    results = results_of("float32_beta_powers", "optimizer[adam*", "optimizer[adamw*", known=[])
    assert results and all(r.status == "pass" for r in results.values()), results
