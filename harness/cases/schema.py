"""The case schema: one case's YAML tree checked key by key into a ``Case``.

``check_case`` walks the mapping with a ``Checker`` (harness/cases/checker.py), which
collects every problem of the file (file, line, column, dotted key path, "expected ...,
got ...") instead of stopping at the first, and builds the ``Case`` when there is none.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness.cases.checker import INVALID, Checker, any_invalid, did_you_mean, join
from harness.cases.matrix import variant_suffix
from harness.cases.model import (
    ACTIVATIONS,
    DTYPES,
    INIT_SCHEMES,
    LOSSES,
    OPTIMIZERS,
    BackendFilter,
    Case,
    Expect,
    InitSpec,
    Loss,
    Network,
    Optimizer,
    RandomArraySpec,
    Tolerance,
    param_shapes,
)
from harness.cases.yaml_nodes import Located
from harness.errors import Problem

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
MAX_WIDTH = 4096
MAX_LAYERS = 64
MAX_BATCH = 65_536
MAX_STEPS = 100_000
# Parameters and data of one case are held several times over (per backend, per step);
# beyond this many numbers a case would exhaust memory long before it finished.
MAX_ELEMENTS = 50_000_000

CASE_KEYS = (
    "name",
    "description",
    "network",
    "data",
    "loss",
    "optimizer",
    "steps",
    "dtype",
    "tolerance",
    "expect",
    "matrix",
    "backends",
)


def check_case(
    node: Located, filename: str, variant: Mapping[str, Any]
) -> tuple[Case | None, list[Problem]]:
    """Check one case mapping (matrix already applied) and build it; problems on failure."""
    checker = Checker(filename)
    case = _CaseBuilder(checker, node, variant).build()
    return (None if checker.problems else case), checker.problems


class _CaseBuilder:
    """Walks one case mapping key by key; each ``_read_*`` checks and returns one section."""

    def __init__(self, checker: Checker, node: Located, variant: Mapping[str, Any]) -> None:
        self.c = checker
        self.node = node
        self.variant = variant

    def build(self) -> Case | None:
        fields = self.c.mapping(self.node, "", CASE_KEYS, ("name", "network", "data", "optimizer"))
        if fields is INVALID:
            return None
        name = self._read_name(fields)
        dtype = self._optional(
            fields, "dtype", lambda n: self.c.choice(n, "dtype", DTYPES), "float32"
        )
        network = self._read_network(fields)
        sizes = network.sizes if isinstance(network, Network) else None
        x, y = self._read_data(fields, sizes)
        loss = self._optional(fields, "loss", self._read_loss, Loss("mse"))
        optimizer = self._read_optimizer(fields["optimizer"]) if "optimizer" in fields else INVALID
        steps = self._optional(
            fields, "steps", lambda n: self.c.integer(n, "steps", 1, MAX_STEPS), 1
        )
        description = self._optional(
            fields, "description", lambda n: self.c.string(n, "description"), ""
        )
        tolerance = self._optional(fields, "tolerance", self._read_tolerance, None)
        expect = self._optional(fields, "expect", lambda n: self._read_expect(n, sizes), None)
        backends = self._optional(fields, "backends", self._read_backends, BackendFilter())
        if "matrix" in fields:  # expanded before checking; here only its form matters
            self.c.mapping(fields["matrix"], "matrix", tuple(fields["matrix"].value or ()))
        if isinstance(network, Network) and isinstance(loss, Loss):
            self._check_combination(network, loss, fields)
        values = (
            name,
            network,
            x,
            y,
            loss,
            optimizer,
            steps,
            dtype,
            description,
            tolerance,
            expect,
            backends,
        )
        if any(v is INVALID for v in values):
            return None
        return Case(
            name=name,
            network=network,
            x=x,
            y=y,
            loss=loss,
            optimizer=optimizer,
            steps=steps,
            dtype=dtype,
            description=description,
            tolerance=tolerance,
            expect=expect,
            backends=backends,
            source=f"{self.c.filename}:{self.node.line}",
            variant=dict(self.variant),
        )

    def _optional(
        self, fields: dict[str, Located], key: str, read: Callable[[Located], Any], default: Any
    ) -> Any:
        return read(fields[key]) if key in fields else default

    def _numbers(
        self,
        fields: dict[str, Located],
        key: str,
        defaults: Mapping[str, float],
        *,
        positive: bool = False,
    ) -> dict[str, Any]:
        """The numeric arguments named in ``defaults``, each read from ``fields`` or defaulted."""
        return {
            name: self.c.number(fields[name], f"{key}.{name}", positive=positive)
            if name in fields
            else default
            for name, default in defaults.items()
        }

    def _read_name(self, fields: dict[str, Located]) -> str | Any:
        if "name" not in fields:
            return INVALID
        name = self.c.string(fields["name"], "name")
        if name is not INVALID and not NAME_PATTERN.fullmatch(name):
            return self.c.fail(
                fields["name"],
                "name",
                f"expected letters, digits, '_', '.', '-' only, got {name!r}",
            )
        return name + variant_suffix(dict(self.variant)) if name is not INVALID else INVALID

    def _read_network(self, fields: dict[str, Located]) -> Network | Any:
        if "network" not in fields:
            return INVALID
        keys = ("sizes", "activation", "output_activation", "params", "init")
        net = self.c.mapping(fields["network"], "network", keys, ("sizes",))
        if net is INVALID:
            return INVALID
        sizes = self._read_sizes(net["sizes"]) if "sizes" in net else INVALID
        activation = self._optional(
            net,
            "activation",
            lambda n: self.c.choice(n, "network.activation", ACTIVATIONS),
            "sigmoid",
        )
        output_activation = self._optional(
            net,
            "output_activation",
            lambda n: self.c.choice(n, "network.output_activation", ACTIVATIONS),
            activation,
        )
        params, init = None, None
        if "params" in net and "init" in net:
            self.c.fail(
                net["init"], "network.init", "give either network.params or network.init, not both"
            )
        elif "params" in net:
            params = self._read_params(net["params"], "network.params", sizes, require_all=True)
        elif "init" in net:
            init = self._read_init(net["init"])
        else:
            self.c.fail(
                fields["network"], "network.params", "required: network.params or network.init"
            )
            params = INVALID
        if (
            any_invalid((sizes, activation, output_activation))
            or params is INVALID
            or init is INVALID
        ):
            return INVALID
        return Network(tuple(sizes), activation, output_activation, params, init)

    def _read_sizes(self, node: Located) -> list[int] | Any:
        items = self.c.sequence(node, "network.sizes")
        if items is INVALID:
            return INVALID
        if not 2 <= len(items) <= MAX_LAYERS + 1:
            return self.c.fail(
                node,
                "network.sizes",
                f"expected 2..{MAX_LAYERS + 1} sizes (input, hidden..., output), got {len(items)}",
            )
        sizes = [
            self.c.integer(item, f"network.sizes.{i}", 1, MAX_WIDTH) for i, item in enumerate(items)
        ]
        if any_invalid(sizes):
            return INVALID
        total = sum(a * b + b for a, b in itertools.pairwise(sizes))
        if total > MAX_ELEMENTS:
            return self.c.fail(
                node,
                "network.sizes",
                f"network has {total:,} parameters; the limit is {MAX_ELEMENTS:,}",
            )
        return sizes

    def _read_params(
        self, node: Located, key: str, sizes: Any, *, require_all: bool
    ) -> dict[str, np.ndarray] | Any:
        fields = self.c.mapping(
            node, key, tuple(node.value) if isinstance(node.value, dict) else ()
        )
        if fields is INVALID:
            return INVALID
        shapes = param_shapes(tuple(sizes)) if sizes is not INVALID and sizes is not None else None
        params: dict[str, np.ndarray] = {}
        ok = True
        for name, value in fields.items():
            path = join(key, name)
            if shapes is not None and name not in shapes:
                hint = did_you_mean(name, shapes)
                self.c.fail(
                    node.key_positions[name],
                    path,
                    f"unknown parameter{hint}; this network has: {', '.join(shapes)}",
                )
                ok = False
                continue
            array = self.c.array(value, path, shapes[name] if shapes is not None else None)
            ok = ok and array is not INVALID
            params[name] = array
        if shapes is not None and require_all:
            for name in shapes:
                if name not in fields:
                    self.c.fail(
                        node,
                        join(key, name),
                        f"required parameter is missing (shape {shapes[name]})",
                    )
                    ok = False
        return params if ok else INVALID

    def _read_init(self, node: Located) -> InitSpec | Any:
        value = node.value
        scheme_name = value.get("scheme") if isinstance(value, dict) else None
        scheme = (
            self.c.choice(scheme_name, "network.init.scheme", INIT_SCHEMES)
            if scheme_name
            else INVALID
        )
        if scheme_name is None and isinstance(value, dict):
            self.c.fail(node, "network.init.scheme", "required key is missing")
        extra = (
            tuple(INIT_SCHEMES[scheme]) if scheme is not INVALID else ("low", "high", "mean", "std")
        )
        fields = self.c.mapping(node, "network.init", ("seed", "scheme", *extra), ("seed",))
        if fields is INVALID or scheme is INVALID:
            return INVALID
        seed = (
            self.c.integer(fields["seed"], "network.init.seed", 0, 2**63 - 1)
            if "seed" in fields
            else INVALID
        )
        args = self._numbers(fields, "network.init", INIT_SCHEMES[scheme])
        if seed is INVALID or any_invalid(args.values()):
            return INVALID
        return InitSpec(seed, scheme, args)

    def _read_data(self, fields: dict[str, Located], sizes: Any) -> tuple[Any, Any]:
        if "data" not in fields:
            return INVALID, INVALID
        data = self.c.mapping(fields["data"], "data", ("x", "y"), ("x", "y"))
        if data is INVALID:
            return INVALID, INVALID
        widths = (sizes[0], sizes[-1]) if sizes else (None, None)
        x = self._read_array_source(data["x"], "data.x", widths[0]) if "x" in data else INVALID
        y = self._read_array_source(data["y"], "data.y", widths[1]) if "y" in data else INVALID
        if x is not INVALID and y is not INVALID:
            bx, by = _batch(x), _batch(y)
            if bx != by:
                self.c.fail(data["y"], "data.y", f"expected {bx} rows to match data.x, got {by}")
                return INVALID, INVALID
        return x, y

    def _read_array_source(self, node: Located, key: str, width: int | None) -> Any:
        if isinstance(node.value, dict):
            fields = self.c.mapping(node, key, ("seed", "batch", "low", "high"), ("seed", "batch"))
            if fields is INVALID:
                return INVALID
            seed = (
                self.c.integer(fields["seed"], f"{key}.seed", 0, 2**63 - 1)
                if "seed" in fields
                else INVALID
            )
            batch = (
                self.c.integer(fields["batch"], f"{key}.batch", 1, MAX_BATCH)
                if "batch" in fields
                else INVALID
            )
            low = self._optional(fields, "low", lambda n: self.c.number(n, f"{key}.low"), -1.0)
            high = self._optional(fields, "high", lambda n: self.c.number(n, f"{key}.high"), 1.0)
            if any_invalid((seed, batch, low, high)):
                return INVALID
            if low > high:
                return self.c.fail(node, f"{key}.high", f"expected high >= low ({low}), got {high}")
            return RandomArraySpec(seed, batch, low, high)
        array = self.c.array(node, key, None)
        if array is INVALID:
            return INVALID
        if array.ndim != 2 or (width is not None and array.shape[1] != width) or array.shape[0] < 1:
            expected = f"(batch, {width})" if width is not None else "(batch, features)"
            return self.c.fail(node, key, f"expected shape {expected}, got {array.shape}")
        if array.shape[0] > MAX_BATCH:
            return self.c.fail(
                node, key, f"expected at most {MAX_BATCH:,} rows, got {array.shape[0]:,}"
            )
        return array

    def _read_loss(self, node: Located) -> Loss | Any:
        if isinstance(node.value, str):
            name = self.c.choice(node, "loss", LOSSES)
            return INVALID if name is INVALID else Loss(name, dict(LOSSES[name]))
        raw_name = node.value.get("name") if isinstance(node.value, dict) else None
        name = self.c.choice(raw_name, "loss.name", LOSSES) if raw_name is not None else INVALID
        allowed = (
            ("name", *LOSSES[name])
            if name is not INVALID
            else ("name", *{k for v in LOSSES.values() for k in v})
        )
        fields = self.c.mapping(node, "loss", allowed, ("name",))
        if fields is INVALID or name is INVALID:
            return INVALID
        args = self._numbers(fields, "loss", LOSSES[name], positive=True)
        return INVALID if any_invalid(args.values()) else Loss(name, args)

    def _read_optimizer(self, node: Located) -> Optimizer | Any:
        if isinstance(node.value, str):
            node = Located(
                {"name": node}, node.line, node.column, {"name": (node.line, node.column)}
            )
        raw_name = node.value.get("name") if isinstance(node.value, dict) else None
        name = (
            self.c.choice(raw_name, "optimizer.name", OPTIMIZERS)
            if raw_name is not None
            else INVALID
        )
        defaults = OPTIMIZERS[name] if name is not INVALID else {}
        allowed = (
            ("name", *defaults)
            if name is not INVALID
            else ("name", *{k for v in OPTIMIZERS.values() for k in v})
        )
        fields = self.c.mapping(node, "optimizer", allowed, ("name",))
        if fields is INVALID or name is INVALID:
            return INVALID
        args: dict[str, Any] = {}
        for key, default in defaults.items():
            path = f"optimizer.{key}"
            if key not in fields:
                args[key] = (
                    default
                    if default is not None
                    else self.c.fail(node, path, f"required by {name}")
                )
            elif isinstance(default, bool):
                args[key] = self.c.boolean(fields[key], path)
            elif isinstance(default, tuple):
                args[key] = self._read_pair(fields[key], path)
            else:
                args[key] = self.c.number(fields[key], path)
                if args[key] is not INVALID and args[key] < 0:
                    args[key] = self.c.fail(
                        fields[key], path, f"expected a number >= 0, got {args[key]}"
                    )
        if any_invalid(args.values()):
            return INVALID
        if name == "sgd" and args["nesterov"] and (args["momentum"] <= 0 or args["dampening"] != 0):
            return self.c.fail(
                fields.get("nesterov", node),
                "optimizer.nesterov",
                "nesterov requires momentum > 0 and dampening = 0 (as torch.optim.SGD)",
            )
        return Optimizer(name, args)

    def _read_pair(self, node: Located, key: str) -> tuple[float, float] | Any:
        items = self.c.sequence(node, key)
        if items is INVALID:
            return INVALID
        if len(items) != 2:
            return self.c.fail(node, key, f"expected 2 numbers, got {len(items)}")
        pair = tuple(self.c.number(item, f"{key}.{i}") for i, item in enumerate(items))
        if any_invalid(pair):
            return INVALID
        if not all(0 <= b < 1 for b in pair):
            return self.c.fail(node, key, f"expected numbers in [0, 1), got {list(pair)}")
        return pair

    def _read_tolerance(self, node: Located) -> Tolerance | Any:
        fields = self.c.mapping(node, "tolerance", ("rtol", "atol"), ("rtol", "atol"))
        if fields is INVALID or len(fields) < 2:
            return INVALID
        rtol = self.c.number(fields["rtol"], "tolerance.rtol")
        atol = self.c.number(fields["atol"], "tolerance.atol")
        for key, value in (("rtol", rtol), ("atol", atol)):
            if value is not INVALID and value < 0:
                self.c.fail(fields[key], f"tolerance.{key}", f"expected a number >= 0, got {value}")
                return INVALID
        return INVALID if any_invalid((rtol, atol)) else Tolerance(rtol, atol)

    def _read_expect(self, node: Located, sizes: Any) -> Expect | Any:
        keys = ("decimals", "output", "loss", "params_after", "output_after")
        fields = self.c.mapping(node, "expect", keys, ("decimals",))
        if fields is INVALID:
            return INVALID
        decimals = (
            self.c.integer(fields["decimals"], "expect.decimals", 0, 17)
            if "decimals" in fields
            else INVALID
        )
        out_shape = None  # output shape depends on the batch; checked against data later
        output = self._optional(
            fields, "output", lambda n: self.c.array(n, "expect.output", out_shape), None
        )
        output_after = self._optional(
            fields,
            "output_after",
            lambda n: self.c.array(n, "expect.output_after", out_shape),
            None,
        )
        loss = self._optional(fields, "loss", lambda n: self.c.number(n, "expect.loss"), None)
        params = self._optional(
            fields,
            "params_after",
            lambda n: self._read_params(n, "expect.params_after", sizes, require_all=False),
            {},
        )
        if any_invalid((decimals, output, output_after, loss, params)):
            return INVALID
        return Expect(decimals, output, loss, params, output_after)

    def _read_backends(self, node: Located) -> BackendFilter | Any:
        fields = self.c.mapping(node, "backends", ("skip", "only"))
        if fields is INVALID:
            return INVALID
        lists = {}
        for key in ("skip", "only"):
            items = self.c.sequence(fields[key], f"backends.{key}") if key in fields else []
            if items is INVALID:
                return INVALID
            names = [self.c.string(item, f"backends.{key}.{i}") for i, item in enumerate(items)]
            if any_invalid(names):
                return INVALID
            lists[key] = tuple(names)
        return BackendFilter(lists["skip"], lists["only"])

    def _check_combination(self, network: Network, loss: Loss, fields: dict[str, Located]) -> None:
        where = fields.get("loss", self.node)
        if loss.name in ("bce_logits", "cross_entropy") and network.output_activation != "identity":
            self.c.fail(
                where,
                "loss",
                f"{loss.name} takes logits: it requires network.output_activation: identity, got {network.output_activation}",
            )
        if loss.name == "bce" and network.output_activation != "sigmoid":
            self.c.fail(
                where,
                "loss",
                f"bce takes probabilities: it requires network.output_activation: sigmoid, got {network.output_activation}",
            )
        if loss.name == "cross_entropy" and network.sizes[-1] < 2:
            self.c.fail(
                where,
                "loss",
                "cross_entropy needs at least 2 outputs (a softmax over one output is constant)",
            )
        expect = fields.get("expect")
        if expect is not None and isinstance(expect.value, dict):
            for key in ("output", "output_after"):
                if key in expect.value and isinstance(expect.value[key].value, list):
                    array_shape = np.shape(expect.value[key].plain())
                    if len(array_shape) != 2 or array_shape[1] != network.sizes[-1]:
                        self.c.fail(
                            expect.value[key],
                            f"expect.{key}",
                            f"expected shape (batch, {network.sizes[-1]}), got {array_shape}",
                        )


def _batch(source: Any) -> int:
    return source.batch if isinstance(source, RandomArraySpec) else int(source.shape[0])
