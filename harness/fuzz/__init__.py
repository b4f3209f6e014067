"""``crossgrad fuzz``: generated cases, run through the normal pipeline, with every
unexplained divergence shrunk to a minimal case (docs/fuzzing.md).

- ``generate``: Hypothesis strategies for families of cases across the whole vocabulary of
  docs/spec.md, weighted toward the edges where frameworks differ.
- ``signature``: what makes two divergences "the same": backend, status, first divergent
  stage and layer role, and the knob values that matter.
- ``campaign``: generation, running in rounds, grouping by signature, shrinking.
- ``findings``: findings.yaml (cases ready for cases/) and findings.md.
"""
