"""PyTorch: torch.nn layers and losses, torch.optim optimizers, autograd."""
