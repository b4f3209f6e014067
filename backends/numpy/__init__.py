"""The reference: hand-written NumPy backprop (ops.py holds the maths), eager and vectorized.

The same shape as the framework folders (ops.py, eager.py, vectorized.py) without their
compiled.py: NumPy has no compiler, so the reference has one execution mode, eager.
"""
