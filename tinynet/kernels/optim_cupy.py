"""The optimizers' updates on the GPU: the reference's array-module code runs on CuPy arrays as it is."""
from .optim_numpy import adam_step, axpby, sgd_step

__all__ = ["axpby", "sgd_step", "adam_step"]
