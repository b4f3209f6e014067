"""Generated cases as a case file: numbers in flow style, every value stated (no aliases)."""

from __future__ import annotations

from typing import Any

import yaml


def dump_cases(mappings: list[dict[str, Any]]) -> str:
    """A case file holding ``mappings``, numbers in flow style, no YAML aliases."""
    return yaml.dump(
        {"cases": mappings},
        Dumper=_PlainDumper,
        sort_keys=False,
        default_flow_style=None,
        width=1_000_000,
    )


# libyaml's emitter, where PyYAML was built with it: the pure-Python one costs about 20 ms
# per generated family, a third of what running it costs.
_Dumper: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _PlainDumper(_Dumper):
    def ignore_aliases(self, data: Any) -> bool:  # a case file states every value itself
        return True
