"""End to end: the MNIST CNN trained in tinynet and in PyTorch, from the same weights on the same
real MNIST batches, follows the same loss curve for 30 Adam steps (float32), on both CPU kernel paths."""
import numpy as np
import pytest
import torch
from helpers import assert_close, load_weights, train_both

import tinynet as tn
from tinynet import kernels

STEPS, BATCH, LR = 30, 60, 1e-3


def cnn_pair():
    """The benchmarked CNN in both libraries, with tinynet's initial weights."""
    model = tn.Sequential(
        tn.Conv2d(1, 8, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
        tn.Conv2d(8, 16, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
        tn.Flatten(), tn.Linear(784, 10),
    )
    nn = torch.nn
    torch_model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(784, 10),
    )
    return model, load_weights(torch_model, model)


@pytest.mark.parametrize("backend", kernels.CPU_BACKENDS)
def test_cnn_trained_with_adam_follows_pytorchs_losses(mnist_root, backend):
    images, labels = tn.datasets.mnist(mnist_root, train=True, download=False)
    order = np.random.default_rng(0).permutation(len(images))[: STEPS * BATCH].reshape(STEPS, BATCH)

    tn.manual_seed(0)
    model, torch_model = cnn_pair()
    optimizer, torch_optimizer = tn.optim.Adam(model.parameters(), lr=LR), torch.optim.Adam(torch_model.parameters(), lr=LR)
    with kernels.use(backend):
        losses, torch_losses = train_both(model, optimizer, torch_model, torch_optimizer,
                                          ((images[batch], labels[batch]) for batch in order))

    assert_close(losses, torch_losses, np.float32, "losses")  # measured: within 5e-7
    for name, param in model.named_parameters():
        assert param.data.dtype == np.float32, name
    # From chance level (ln 10 = 2.30), 30 Adam steps bring the loss clearly down.
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, "the loss should have gone down"
