"""JAX: a parameter pytree, jax.value_and_grad, optax losses and optimizers.

ops.py: the activation, loss and optimizer tables; eager.py: the adapter op by op
(``jax:eager``, run when named); compiled.py: its subclass under ``jax.jit`` (``jax``);
vectorized.py: the batched sweep of ``jax``.
"""
