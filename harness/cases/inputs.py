"""Initial parameters and data, made once in NumPy and handed identically to every backend.

Values are float64 arrays already rounded to the case's dtype, so every framework's own
conversion to that dtype is exact and all backends start from bit-identical numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.cases.model import Case, InitSpec, RandomArraySpec, param_names, param_shapes


@dataclass(frozen=True)
class Inputs:
    params: dict[str, np.ndarray]
    x: np.ndarray
    y: np.ndarray


def make_inputs(case: Case) -> Inputs:
    sizes = case.network.sizes
    if case.network.params is not None:
        params = {
            name: np.asarray(case.network.params[name], dtype=np.float64)
            for name in param_names(sizes)
        }
    else:
        assert case.network.init is not None  # the schema requires params or init
        params = initial_params(case.network.init, sizes)
    x = _array(case.x, sizes[0])
    y = _array(case.y, sizes[-1])
    return Inputs(
        params={name: round_to_dtype(value, case.dtype) for name, value in params.items()},
        x=round_to_dtype(x, case.dtype),
        y=round_to_dtype(y, case.dtype),
    )


def batch_rows(case: Case) -> int:
    """Rows of the case's data: what ``make_inputs(case).x.shape[0]`` will be, without
    drawing any number."""
    if isinstance(case.x, RandomArraySpec):
        return case.x.batch
    return int(np.asarray(case.x).shape[0])


def initial_params(init: InitSpec, sizes: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Draw every parameter, in ``state_dict`` order, from one ``Generator(seed)``.

    The fan-based schemes initialise biases to zero, as Keras' defaults and most
    published recipes do.
    """
    rng = np.random.default_rng(init.seed)
    params = {}
    for name, shape in param_shapes(sizes).items():
        is_bias = len(shape) == 1
        if init.scheme == "uniform":
            params[name] = rng.uniform(init.args["low"], init.args["high"], shape)
        elif init.scheme == "normal":
            params[name] = rng.normal(init.args["mean"], init.args["std"], shape)
        elif is_bias:
            params[name] = np.zeros(shape)
        elif init.scheme == "xavier_uniform":
            bound = np.sqrt(6.0 / (shape[0] + shape[1]))
            params[name] = rng.uniform(-bound, bound, shape)
        elif init.scheme == "he_normal":
            params[name] = rng.normal(0.0, np.sqrt(2.0 / shape[1]), shape)
        else:
            raise ValueError(f"unknown init scheme {init.scheme!r}")
    return params


def _array(source: np.ndarray | RandomArraySpec, width: int) -> np.ndarray:
    if isinstance(source, RandomArraySpec):
        rng = np.random.default_rng(source.seed)
        return rng.uniform(source.low, source.high, (source.batch, width))
    return np.asarray(source, dtype=np.float64)


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` rounded to the nearest number of ``dtype`` (ties to even), kept in float64."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "float64":
        return values.copy()
    if dtype in ("float32", "float16"):
        return values.astype(dtype).astype(np.float64)
    if dtype == "bfloat16":
        return _round_to_bfloat16(values)
    raise ValueError(f"unknown dtype {dtype!r}")


def _round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    # bfloat16 is the top 16 bits of a float32; round the dropped 16 bits to nearest even.
    bits = values.astype(np.float32).view(np.uint32)
    rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32).astype(np.float64)
