"""crossgrad adapter for Keras 3 on PyTorch, registered as the ``keras_torch`` backend."""
