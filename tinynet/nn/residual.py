"""Residual connections, and the pattern for any module that calls sub-modules itself."""
from .module import Module


class Residual(Module):
    """y = block(x) + shortcut(x), the skip connection of a ResNet (He et al., 2016).

    The sum sends its gradient unchanged to both terms, so ``backward`` runs each branch's
    backward on the same gradient and adds the two input gradients. ``shortcut=None`` is the
    identity (the gradient passes straight through); a 1x1 ``Conv2d`` (often followed by a
    ``BatchNorm2d``) makes the shapes match when the block changes the channels or the size.

    Args:
        block: the residual branch, any Module (typically a ``Sequential``).
        shortcut: the other branch, a Module, or None for the identity.

    Shape: both branches must map the input to the same shape, which is the output's.
    State-dict keys: ``block.<...>`` and ``shortcut.<...>``.

    Writing your own composite module follows the same pattern: keep each sub-module as an
    attribute (that is how parameters, buffers and state-dict keys are found), call each
    sub-module once in ``forward``, and call their ``backward``s in ``backward`` in the reverse
    order, adding the gradients where forward used a value twice.

    Example::

        block = Residual(Sequential(Conv2d(16, 16, 3, padding=1), BatchNorm2d(16), ReLU(),
                                    Conv2d(16, 16, 3, padding=1), BatchNorm2d(16)))
        y = block(x)                   # x (N, 16, H, W) -> (N, 16, H, W)
        grad_x = block.backward(grad_y)
    """

    def __init__(self, block, shortcut=None):
        super().__init__()
        for name, value in (("block", block), ("shortcut", shortcut)):
            if not (isinstance(value, Module) or (name == "shortcut" and value is None)):
                raise TypeError(f"Residual: {name} must be a tinynet Module{' or None' if name == 'shortcut' else ''}, "
                                f"got a {type(value).__name__}")
        self.block = block
        self.shortcut = shortcut

    def forward(self, x):
        y = self.block(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if y.shape != skip.shape:
            raise ValueError(
                f"Residual: the block's output shape {y.shape} does not match the shortcut's {skip.shape} "
                f"(input shape {x.shape}); give a shortcut that maps the input to the block's output shape"
            )
        self._cache = True  # backward needs nothing but the branches' own caches
        return y + skip

    def backward(self, grad_out):
        self._pop_cache(grad_out)
        grad_skip = grad_out if self.shortcut is None else self.shortcut.backward(grad_out)
        # A new array: a branch may return grad_out itself, which must not be written.
        return self.block.backward(grad_out) + grad_skip

    def backward_parameters(self, grad_out):
        self._pop_cache(grad_out)
        self.block.backward_parameters(grad_out)
        if self.shortcut is not None:
            self.shortcut.backward_parameters(grad_out)
