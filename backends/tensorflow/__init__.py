"""TensorFlow: Keras Dense layers, tf.GradientTape, Keras losses and optimizers.

ops.py: the activation, loss and optimizer tables; eager.py: the adapter op by op
(``tensorflow:eager``, run when named); compiled.py: its subclass in ``tf.function``
(``tensorflow``); vectorized.py: the batched sweep of ``tensorflow``.
"""
