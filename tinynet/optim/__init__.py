"""Optimizers: update parameters in place from their gradients, as ``torch.optim`` does.

    optimizer = tinynet.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ...                                  # forward and backward fill each parameter's .grad
    optimizer.step()
    optimizer.zero_grad()
"""
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import Adagrad, RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]
