"""What Linear and Conv2d share: a ``weight``, an optional ``bias``, and a backward pass that
accumulates both gradients and can skip the input's."""
from .module import Module


class WeightedLayer(Module):
    """A layer with a ``weight`` Parameter and a ``bias`` Parameter (None when the layer has none).

    A subclass writes ``__init__`` and ``forward`` (which saves its functional cache in ``_cache``)
    and names its functional backward, ``_functional_backward(grad_y, cache, need_bias_grad,
    need_input_grad) -> (grad_x, grad_weight, grad_bias)``.
    """

    _functional_backward = None

    def backward(self, grad_out, need_input_grad=True):
        """Accumulate the weight's and bias's gradients; return the input's (None unless ``need_input_grad``)."""
        grad_x, grad_w, grad_b = self._functional_backward(
            grad_out, self._pop_cache(grad_out), self.bias is not None, need_input_grad
        )
        self.weight.accumulate_grad(grad_w)
        if self.bias is not None:
            self.bias.accumulate_grad(grad_b)
        return grad_x

    def backward_parameters(self, grad_out):
        """The parameters' gradients only: the input's is not computed (one matrix product fewer)."""
        self.backward(grad_out, need_input_grad=False)
