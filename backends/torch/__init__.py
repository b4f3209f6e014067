"""PyTorch: torch.nn layers and losses, torch.optim optimizers, autograd.

ops.py: the activation, loss and optimizer tables; eager.py: the adapter (``torch``);
compiled.py: its subclass under ``torch.compile`` (``torch:compile``, run when named);
vectorized.py: the batched sweep of ``torch``.
"""
