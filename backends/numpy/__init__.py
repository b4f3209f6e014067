"""The reference: hand-written NumPy backprop (ops.py holds the maths), eager and vectorized."""
