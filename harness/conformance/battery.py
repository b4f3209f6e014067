"""The conformance kit: a fixed battery every adapter, built-in or plugin, should pass.

``crossgrad check-adapter NAME`` and the pytest plugin (``harness.conformance.pytest_plugin``) both run
it. Importing the adapter's module must not import its framework. Networks are multi-layer:
one with no square weight, so a transposed weight is a shape error, and one with square
hidden weights whose gradients are far from symmetric, so a transpose shows in the values.
Every declared activation, loss, optimizer and dtype gets a check of its own, optimizers over
several steps so their state must carry, and every optimizer argument is set away from its
default in some check; a float64 finite-difference check tests the adapter's gradients
against its own loss, independently of the reference. Each failure is reported as its first
problem in plain words, naming the parameter.

This module lists the checks for an adapter class and runs them; the cases they train are
in harness/conformance/cases.py, the checks themselves in harness/conformance/checks.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from backends import registry
from harness.cases.patterns import matches
from harness.conformance.cases import (
    MLP_SIZES,
    OPTIMIZER_VARIANTS,
    SQUARE_SIZES,
    STEPS,
    base_case,
    preferred,
    variant_name,
)
from harness.conformance.checks import (
    Check,
    CheckResult,
    Kit,
    capabilities,
    compare_with_reference,
    finite_difference_check,
    lazy_import,
    named,
    naming,
    registration,
    repeatable,
)
from harness.conformance.formatting import format_results
from harness.verdict.known import KnownDivergence

if TYPE_CHECKING:
    from backends.base import Backend

DEFAULT_REFERENCE = "numpy"


def battery(cls: type[Backend]) -> list[Check]:
    """The checks for an adapter class, one per declared activation, loss, optimizer, dtype."""

    def comparing(name: str, purpose: str, **overrides: Any) -> Check:
        case = base_case(cls, name, **overrides)
        return Check(name, purpose, lambda kit: named(name, compare_with_reference(kit, case)))

    checks = [
        Check("registration", "name, version and declared capabilities", registration),
        Check(
            "lazy-import",
            "importing the adapter's module imports none of its `requires`",
            lazy_import,
        ),
        Check(
            "naming",
            "state_dict names, order and (out, in) shapes of every recorded value",
            lambda kit: named("naming", naming(kit, base_case(cls, "naming"))),
        ),
        comparing("non-square-mlp", f"a {'-'.join(map(str, MLP_SIZES))} network, {STEPS} steps"),
        comparing(
            "square-mlp",
            f"a {'-'.join(map(str, SQUARE_SIZES))} network: square weights, asymmetric gradients",
            sizes=SQUARE_SIZES,
        ),
        Check(
            "repeatable",
            "the same case twice gives identical values",
            lambda kit: named("repeatable", repeatable(kit, base_case(cls, "repeatable"))),
        ),
        Check("capabilities", "undeclared options are declined, not run", capabilities),
    ]
    for activation in cls.activations:
        checks.append(
            comparing(
                f"activation[{activation}]",
                "hidden and output layers",
                activation=activation,
                output_activation=activation,
            )
        )
    for loss in cls.losses:
        checks.append(comparing(f"loss[{loss}]", "value and gradient", loss=loss))
    for optimizer in cls.optimizers:
        checks.append(
            comparing(f"optimizer[{optimizer}]", f"{STEPS} steps of state", optimizer=optimizer)
        )
        # Every other argument of the optimizer, set away from its default (an argument the
        # adapter declines through unsupported_reason makes its check skipped, not failed).
        for args in OPTIMIZER_VARIANTS[optimizer]:
            checks.append(
                comparing(
                    variant_name(optimizer, args),
                    ", ".join(f"{key} {value}" for key, value in args.items()),
                    optimizer=optimizer,
                    optimizer_args=args,
                )
            )
    for dtype in cls.dtypes:
        # Plain SGD: only the dtype's handling is under test, not the momentum form's rounding.
        checks.append(
            comparing(
                f"dtype[{dtype}]",
                "at that dtype's tolerance",
                dtype=dtype,
                optimizer=preferred(cls.optimizers, "sgd"),
                optimizer_args={"momentum": 0.0} if "sgd" in cls.optimizers else None,
            )
        )
    checks.append(
        Check(
            "finite-difference",
            "float64 gradients vs the adapter's own loss",
            finite_difference_check(cls),
        )
    )
    return checks


def select(checks: list[Check], patterns: Iterable[str]) -> list[Check]:
    patterns = list(patterns)
    if not patterns:
        return checks
    return [c for c in checks if any(matches(c.name, p) for p in patterns)]


def open_kit(
    name: str, reference: str = DEFAULT_REFERENCE, known: list[KnownDivergence] | None = None
) -> Kit:
    """Create the candidate and the reference adapters; raises if either cannot run here."""
    return Kit(name, registry.create(name), registry.create(reference), known or [])


def run_battery(kit: Kit, checks: Iterable[Check]) -> Iterable[CheckResult]:
    for check in checks:
        yield check.run(kit)


def check_adapter(
    name: str,
    reference: str = DEFAULT_REFERENCE,
    patterns: Iterable[str] = (),
    known: list[KnownDivergence] | None = None,
) -> tuple[list[CheckResult], str]:
    """Run the battery (or the checks matching ``patterns``) on ``name``: results and table."""
    kit = open_kit(name, reference, known)
    checks = select(battery(type(kit.candidate)), patterns)
    results = list(run_battery(kit, checks))
    return results, format_results(results)
