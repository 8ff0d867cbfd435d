"""End to end: the MNIST MLP trained in tinynet and in PyTorch, from the same weights on the
same real MNIST batches, follows the same loss curve for 50 SGD steps (float32)."""
import numpy as np
import torch
from helpers import assert_close, load_weights, train_both

import tinynet as tn

STEPS, BATCH, LR = 50, 16, 0.05


def mlp_pair():
    """784-512-512-10 with ReLU and Dropout(0.2), in both libraries, with tinynet's initial weights."""
    model = tn.Sequential(
        tn.Linear(784, 512), tn.ReLU(), tn.Dropout(0.2),
        tn.Linear(512, 512), tn.ReLU(), tn.Dropout(0.2),
        tn.Linear(512, 10),
    )
    nn = torch.nn
    torch_model = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 10),
    )
    return model, load_weights(torch_model, model)


def test_mlp_trained_with_sgd_follows_pytorchs_losses(mnist_root):
    images, labels = tn.datasets.mnist(mnist_root, train=True, download=False)
    x = images[: STEPS * BATCH].reshape(STEPS, BATCH, 784)
    y = labels[: STEPS * BATCH].reshape(STEPS, BATCH)

    tn.manual_seed(0)
    model, torch_model = mlp_pair()
    # Dropout is switched off by evaluation mode, where both libraries make it the identity:
    # the masks come from different generators (NumPy's and PyTorch's) and could never agree,
    # while eval mode keeps the architecture exactly the benchmarked one, Dropout layers included.
    model.eval()
    torch_model.eval()
    optimizer, torch_optimizer = tn.optim.SGD(model.parameters(), lr=LR), torch.optim.SGD(torch_model.parameters(), lr=LR)
    losses, torch_losses = train_both(model, optimizer, torch_model, torch_optimizer, zip(x, y))

    assert_close(losses, torch_losses, np.float32, "losses")
    torch_params = dict(torch_model.named_parameters())
    for name, param in model.named_parameters():
        assert param.data.dtype == np.float32
        assert_close(param.data, torch_params[name].detach().numpy(), np.float32, name)
    # 50 small steps from chance level (ln 10 = 2.30) move the loss only a little, but clearly.
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.05, "the loss should have gone down"
