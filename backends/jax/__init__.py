"""JAX: a parameter pytree, jax.value_and_grad, optax losses and optimizers."""
