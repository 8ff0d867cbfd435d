"""Tell MNIST 3s from 7s with one Linear(784, 1), a sigmoid and the mean squared error.

    python examples/three_vs_seven.py                  # 100 full-batch steps
    python examples/three_vs_seven.py --data-root ../shared/data

Every training 3 and 7 is flattened to 784 pixels and labelled 1 (a three) or 0 (a seven). Each
step of gradient descent uses all of them at once (full batch). The script prints the training
loss every 10 steps, then the test loss and the accuracy on the test set's 3s and 7s: an output
above 0.5 says "three".

MNIST is read from ``--data-root/MNIST/raw`` (default: ``$TINYNET_DATA``, else ``./data``).
"""
import argparse

import numpy as np

import tinynet as tn

parser = argparse.ArgumentParser(description="Tell MNIST 3s from 7s with one linear layer.")
parser.add_argument("--epochs", type=int, default=100, help="full-batch gradient-descent steps (default: 100)")
parser.add_argument("--data-root", help="folder holding MNIST/raw/ (default: $TINYNET_DATA, else ./data)")
parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default: cpu)")
args = parser.parse_args()


def threes_and_sevens(train):
    """Images (N, 784) in [0, 1] and targets (N, 1): 1.0 for a three, 0.0 for a seven."""
    images, labels = tn.datasets.mnist(args.data_root, train=train)
    keep = (labels == 3) | (labels == 7)
    x = images[keep].reshape(-1, 28 * 28)
    y = (labels[keep] == 3).astype(np.float32)[:, None]
    return tn.to_device(x, args.device), tn.to_device(y, args.device)


x_train, y_train = threes_and_sevens(train=True)
x_test, y_test = threes_and_sevens(train=False)
print(f"{len(x_train)} training and {len(x_test)} test images of 3s and 7s")

tn.manual_seed(0)  # fixes the initial weights
model = tn.Sequential(tn.Linear(28 * 28, 1), tn.Sigmoid()).to(args.device)
loss_fn = tn.MSELoss()
optimizer = tn.optim.SGD(model.parameters(), lr=5.0)

for step in range(1, args.epochs + 1):
    loss = loss_fn(model(x_train), y_train)              # forward over every training image
    model.backward_parameters(loss_fn.backward())        # backward: fills .grad of weight and bias
    optimizer.step()
    optimizer.zero_grad()
    if step % 10 == 0 or step == args.epochs:
        print(f"step {step}/{args.epochs}: training loss {loss:.4f}")

model.eval()
output = model(x_test)                                   # (N, 1), each in (0, 1)
test_loss = loss_fn(output, y_test)
correct = int(((output > 0.5) == (y_test == 1)).sum())
print(f"test loss {test_loss:.4f}, test accuracy on 3s and 7s {correct / len(x_test):.2%}")
