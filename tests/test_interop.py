"""PyTorch interop: every supported layer both ways, with outputs compared, and clear refusals."""
import numpy as np
import pytest
import torch
from helpers import assert_close

import tinynet as tn
from tinynet.interop import from_torch, to_torch

torch.set_num_threads(1)

# (tinynet layer, input shape) for every supported layer type.
LAYERS = [
    (lambda: tn.Linear(5, 3), (4, 5)),
    (lambda: tn.Linear(5, 3, bias=False), (4, 5)),
    (lambda: tn.Conv2d(2, 4, 3, padding=1), (2, 2, 6, 6)),
    (lambda: tn.Conv2d(4, 2, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=False), (2, 4, 7, 7)),
    (lambda: tn.MaxPool2d(2), (2, 3, 6, 6)),
    (lambda: tn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 7)),
    (lambda: tn.AvgPool2d((2, 3), stride=1, padding=1), (2, 3, 5, 6)),
    (lambda: tn.ReLU(), (4, 5)),
    (lambda: tn.LeakyReLU(0.2), (4, 5)),
    (lambda: tn.Sigmoid(), (4, 5)),
    (lambda: tn.Tanh(), (4, 5)),
    (lambda: tn.Softmax(dim=1), (4, 5)),
    (lambda: tn.Flatten(), (2, 3, 4, 4)),
    (lambda: tn.Dropout(0.3), (4, 5)),
]
IDS = ["linear", "linear-no-bias", "conv", "conv-options", "maxpool", "maxpool-pad", "avgpool", "relu", "leaky-relu",
       "sigmoid", "tanh", "softmax", "flatten", "dropout"]


@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_layer_round_trips(make, shape, dtype):
    tn.manual_seed(0)
    layer = make()
    if layer.parameters():
        layer.to(dtype)
    layer.eval()  # Dropout is the identity in eval mode, so outputs can be compared
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    expected = layer(x)

    theirs = to_torch(layer)
    assert type(theirs).__name__ == type(layer).__name__ and not theirs.training
    with torch.no_grad():
        assert_close(theirs(torch.from_numpy(x)).numpy(), expected, dtype)

    back = from_torch(theirs)
    assert type(back) is type(layer) and repr(back) == repr(layer) and not back.training
    np.testing.assert_array_equal(back(x), expected)
    for (key, ours), (key_back, copied) in zip(layer.state_dict().items(), back.state_dict().items()):
        assert key == key_back and copied.dtype == dtype
        np.testing.assert_array_equal(copied, ours)


def test_cnn_from_torch_computes_the_same_and_trains_alike():
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, stride=2), torch.nn.Tanh()),
        torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(6 * 3 * 3, 10),
    )
    ours = from_torch(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0.weight", "0.bias", "3.0.weight", "3.0.bias",
                                                                    "6.weight", "6.bias"]
    assert ours.training and isinstance(ours[3], tn.Sequential)
    ours.eval(), theirs.eval()
    x = np.random.default_rng(0).random((5, 1, 14, 14), dtype=np.float32)
    with torch.no_grad():
        assert_close(ours(x), theirs(torch.from_numpy(x)).numpy(), np.float32)
    for key, value in to_torch(ours).state_dict().items():  # and back again, unchanged
        np.testing.assert_array_equal(value.numpy(), theirs.state_dict()[key].numpy())


def test_weights_are_copies():
    layer = tn.Linear(2, 2)
    theirs = to_torch(layer)
    with torch.no_grad():
        theirs.weight.zero_()
    assert np.abs(layer.weight.data).sum() > 0
    back = from_torch(theirs)
    back.weight.data += 1
    assert theirs.weight.abs().sum() == 0


def test_conversion_leaves_tinynets_random_stream_alone():
    tn.manual_seed(7)
    expected = tn.rng.default_generator().random()
    tn.manual_seed(7)
    from_torch(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Conv2d(1, 1, 2)))
    assert tn.rng.default_generator().random() == expected


class Custom(tn.Module):
    def forward(self, x):
        return x


def test_unsupported_layers_and_options_are_named():
    with pytest.raises(TypeError, match=r"to_torch: cannot convert layer Custom at '1': it is not supported; supported layers: Sequential, Linear"):
        to_torch(tn.Sequential(tn.ReLU(), Custom()))
    with pytest.raises(TypeError, match=r"from_torch: cannot convert layer GroupNorm at '0.1': it is not supported"):
        from_torch(torch.nn.Sequential(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.GroupNorm(1, 2))))
    with pytest.raises(TypeError, match=r"cannot convert layer MaxPool2d: ceil_mode=True is not supported by tinynet \(only ceil_mode=False\)"):
        from_torch(torch.nn.MaxPool2d(2, ceil_mode=True))
    with pytest.raises(TypeError, match=r"AvgPool2d: count_include_pad=False is not supported"):
        from_torch(torch.nn.AvgPool2d(2, count_include_pad=False))
    with pytest.raises(TypeError, match=r"Conv2d: padding_mode='reflect' is not supported"):
        from_torch(torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(TypeError, match=r"Conv2d: padding='same' is not supported; give it in pixels"):
        from_torch(torch.nn.Conv2d(1, 1, 3, padding="same"))
    with pytest.raises(TypeError, match=r"Flatten: start_dim=2 is not supported"):
        from_torch(torch.nn.Flatten(2))
    with pytest.raises(TypeError, match=r"from_torch: expected a torch.nn.Module, got a tinynet.nn.linear.Linear"):
        from_torch(tn.Linear(2, 2))
