"""Framework adapters for crossgrad: one module per framework, all the same shape."""
