"""The array-module switch and device bookkeeping, as far as they can be checked without a GPU.

Everything that needs CuPy and a GPU is in ``test_gpu.py``; here CuPy is made unimportable
(``sys.modules["cupy"] = None``) so that the no-GPU paths are tested on every machine.
"""
import sys

import numpy as np
import pytest

import tinynet as tn
from tinynet import backend, cli
from tinynet.optim import Adam


@pytest.fixture
def no_cupy(monkeypatch):
    """A process in which ``import cupy`` fails, whatever this machine has installed."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backend, "_cupy_import_error", None)


def test_numpy_arrays_and_scalars_select_numpy():
    assert tn.get_array_module(np.zeros(3), 1.5, [1, 2]) is np
    assert tn.get_array_module() is np
    assert backend.device_of(np.zeros(2)) == "cpu"


@pytest.mark.parametrize("given, expected", [("cpu", "cpu"), ("CUDA", "cuda"), ("cuda:0", "cuda")])
def test_device_names_are_normalised(given, expected):
    assert backend.check_device(given) == expected


@pytest.mark.parametrize("device", ["tpu", "gpu", ""])
def test_an_unknown_device_is_refused_by_name(device):
    with pytest.raises(ValueError, match=rf"^device must be one of \('cpu', 'cuda'\), got '{device}'$"):
        tn.to_device(np.zeros(2), device)


def test_to_cpu_returns_the_same_numpy_array_without_copying():
    x = np.arange(6.0)
    assert tn.to_device(x, "cpu") is x and tn.to_numpy(x) is x


def test_moving_a_model_to_cpu_keeps_its_weights_and_drops_gradients():
    model = tn.Sequential(tn.Linear(3, 2), tn.ReLU())
    before = {name: value.copy() for name, value in model.state_dict().items()}
    model(np.ones((1, 3), np.float32))
    model.backward(np.ones((1, 2), np.float32))
    assert model.to("cpu") is model and model.device == "cpu"
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert all(p.grad is None for p in model.parameters())


def test_module_to_refuses_what_is_neither_a_device_nor_a_float_dtype():
    model = tn.Sequential(tn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"^Module.to: expected a device \('cpu' or 'cuda'\) or a float dtype, got 'tpu'$"):
        model.to("tpu")
    with pytest.raises(TypeError, match="^Module.to: parameters must be floating point, got dtype int32$"):
        model.to(np.int32)


def test_cuda_without_cupy_says_how_to_get_it_and_moves_nothing(no_cupy):
    assert not tn.has_cupy()
    model = tn.Sequential(tn.Linear(3, 2))
    weight = model[0].weight.data
    with pytest.raises(ImportError, match=r"^tinynet's 'cuda' device needs CuPy and an NVIDIA GPU: install it with "
                                          r"`pip install tinynet\[gpu\]`"):
        model.to("cuda")
    assert model[0].weight.data is weight
    optimizer = Adam(model.parameters())
    model(np.ones((1, 3), np.float32))
    model.backward(np.ones((1, 2), np.float32))
    optimizer.step()  # now it has state to move
    with pytest.raises(ImportError, match="needs CuPy"):
        optimizer.to("cuda")


def test_the_cuda_recipe_without_cupy_fails_in_one_line(no_cupy, capsys):
    assert cli.main(["train", "perceptron", "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinynet train perceptron: error: tinynet's 'cuda' device needs CuPy") and "Traceback" not in err
