"""TensorFlow: Keras Dense layers, tf.GradientTape, Keras losses and optimizers."""
