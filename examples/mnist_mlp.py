"""Train a multilayer perceptron on MNIST: 784-512-512-10, ReLU, Dropout(0.2), SGD.

    python examples/mnist_mlp.py                      # 10 epochs on the CPU
    python examples/mnist_mlp.py --device cuda        # on an NVIDIA GPU (needs CuPy)

Cross-entropy, SGD with lr 0.05, shuffled batches of 16. The network sees standardized pixels,
(pixel - 0.1307) / 0.3081, the mean and deviation of MNIST's training pixels: plain SGD
converges faster on inputs centred on 0. The script prints the loss and test accuracy after each
epoch, then the accuracy on each digit, and saves the weights.

MNIST is read from ``--data-root/MNIST/raw`` (default: ``$TINYNET_DATA``, else ``./data``).
Augmentation and schedules: ``tinynet train mlp --help``.
"""
import argparse
import os

import numpy as np

import tinynet as tn

parser = argparse.ArgumentParser(description="Train a 784-512-512-10 MLP on MNIST.")
parser.add_argument("--epochs", type=int, default=10, help="passes over the training set (default: 10)")
parser.add_argument("--data-root", help="folder holding MNIST/raw/ (default: $TINYNET_DATA, else ./data)")
parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default: cpu)")
parser.add_argument("--output-dir", default=".", help="where to save the weights (default: .)")
args = parser.parse_args()


def load(train):
    """Standardized images (N, 1, 28, 28) and labels (N,) on the chosen device."""
    images, labels = tn.datasets.mnist(args.data_root, train=train)
    images = (images - np.float32(0.1307)) / np.float32(0.3081)
    return tn.to_device(images, args.device), labels


train_images, train_labels = load(train=True)
test_images, test_labels = load(train=False)
train_labels = tn.to_device(train_labels, args.device)

tn.manual_seed(0)  # fixes the initial weights and the dropout masks
model = tn.Sequential(
    tn.Flatten(),                                            # (N, 1, 28, 28) -> (N, 784)
    tn.Linear(784, 512), tn.ReLU(), tn.Dropout(0.2),
    tn.Linear(512, 512), tn.ReLU(), tn.Dropout(0.2),
    tn.Linear(512, 10),                                      # -> (N, 10) scores
).to(args.device)
loss_fn = tn.CrossEntropyLoss()
optimizer = tn.optim.SGD(model.parameters(), lr=0.05)
train_loader = tn.data.DataLoader(train_images, train_labels, batch_size=16, shuffle=True, seed=0)


def test_predictions():
    """The predicted digit of every test image. Eval mode: dropout passes everything through."""
    model.eval()
    scores = [model(test_images[start:start + 1000]) for start in range(0, len(test_images), 1000)]
    model.train()
    return tn.to_numpy(tn.get_array_module(scores[0]).concatenate(scores).argmax(axis=1))


for epoch in range(1, args.epochs + 1):
    model.train()                                            # dropout on
    total_loss = 0.0
    for x, y in train_loader:
        loss = loss_fn(model(x), y)                          # forward
        model.backward_parameters(loss_fn.backward())        # backward: fills every .grad
        optimizer.step()
        optimizer.zero_grad()
        total_loss += loss * len(x)
    accuracy = tn.metrics.accuracy(test_labels, test_predictions())
    print(f"epoch {epoch}/{args.epochs}: training loss {total_loss / len(train_images):.4f}, "
          f"test accuracy {accuracy:.2%}")

predicted = test_predictions()
print(f"test accuracy {tn.metrics.accuracy(test_labels, predicted):.2%}")
per_digit = tn.metrics.per_class_accuracy(test_labels, predicted, num_classes=10)
print("accuracy per digit: " + "  ".join(f"{digit}: {a:.2%}" for digit, a in enumerate(per_digit)))

os.makedirs(args.output_dir, exist_ok=True)
path = os.path.join(args.output_dir, "mnist_mlp.npz")
tn.save(model.state_dict(), path)
print(f"weights saved to {path}")
