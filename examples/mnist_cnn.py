"""Train a small convolutional network on MNIST, tinynet's main example.

    python examples/mnist_cnn.py                      # 10 epochs on the CPU
    python examples/mnist_cnn.py --device cuda        # on an NVIDIA GPU (needs CuPy)
    mpiexec -n 2 python examples/mnist_cnn.py --distributed   # data-parallel over 2 processes (needs mpi4py)

The network: Conv2d(1, 8, 3, padding=1) - ReLU - MaxPool2d(2) - Conv2d(8, 16, 3, padding=1) -
ReLU - MaxPool2d(2) - Flatten - Linear(784, 10), trained with cross-entropy and Adam (lr 0.001)
on shuffled batches of 60. The script prints the loss and test accuracy after each epoch, then
the precision and recall of each digit; it saves the weights, loads them into a fresh model and
checks that the fresh model scores the same.

MNIST is read from ``--data-root/MNIST/raw`` (default: ``$TINYNET_DATA``, else ``./data``).
The wider network, augmentation and learning-rate schedules: ``tinynet train cnn --help``.
"""
import argparse
import os

import tinynet as tn

parser = argparse.ArgumentParser(description="Train a small CNN on MNIST.")
parser.add_argument("--epochs", type=int, default=10, help="passes over the training set (default: 10)")
parser.add_argument("--data-root", help="folder holding MNIST/raw/ (default: $TINYNET_DATA, else ./data)")
parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default: cpu)")
parser.add_argument("--output-dir", default=".", help="where to save the weights (default: .)")
parser.add_argument("--distributed", action="store_true",
                    help="train data-parallel over the processes of `mpiexec -n N` (needs mpi4py)")
args = parser.parse_args()
# Data-parallel: every process holds the whole model and trains on its own slice of every batch;
# the gradients are averaged before each step, so all processes keep the same weights.
comm = tn.distributed.init() if args.distributed else None
is_main = comm is None or comm.is_main
say = print if is_main else (lambda *words: None)  # one process reports


def make_model():
    """(N, 1, 28, 28) images -> (N, 10) scores, one per digit."""
    return tn.Sequential(
        tn.Conv2d(1, 8, kernel_size=3, padding=1), tn.ReLU(), tn.MaxPool2d(2),    # -> (N, 8, 14, 14)
        tn.Conv2d(8, 16, kernel_size=3, padding=1), tn.ReLU(), tn.MaxPool2d(2),   # -> (N, 16, 7, 7)
        tn.Flatten(), tn.Linear(16 * 7 * 7, 10),                                 # -> (N, 10)
    )


def test_predictions(model, images):
    """The predicted digit of every image, computed 1000 images at a time in eval mode."""
    model.eval()
    scores = [model(images[start:start + 1000]) for start in range(0, len(images), 1000)]
    model.train()
    return tn.to_numpy(tn.get_array_module(scores[0]).concatenate(scores).argmax(axis=1))


# The data: images (N, 1, 28, 28) in [0, 1], labels (N,) in 0..9.
train_images, train_labels = tn.datasets.mnist(args.data_root, train=True)
test_images, test_labels = tn.datasets.mnist(args.data_root, train=False)
train_images, train_labels = tn.to_device(train_images, args.device), tn.to_device(train_labels, args.device)
test_images = tn.to_device(test_images, args.device)
say(f"{len(train_images)} training images, {len(test_images)} test images")

# The model, the loss, the optimizer and the batches. The seed fixes the initial weights and the
# shuffling, so two runs print the same numbers.
tn.manual_seed(0)
model = make_model().to(args.device)
loss_fn = tn.CrossEntropyLoss()
optimizer = tn.optim.Adam(model.parameters(), lr=1e-3)
if comm is not None:
    tn.distributed.broadcast_parameters(model, comm)                  # rank 0's weights everywhere
    optimizer = tn.distributed.DistributedOptimizer(optimizer, comm)  # averages the gradients
# Batches of 60 in all: with N processes, each takes its own 60 // N of every batch.
processes = 1 if comm is None else comm.size
train_loader = tn.data.DataLoader(train_images, train_labels, batch_size=60 // processes, shuffle=True, seed=0,
                                  shard=comm)

for epoch in range(1, args.epochs + 1):
    total_loss, seen = 0.0, 0
    for x, y in train_loader:
        loss = loss_fn(model(x), y)                     # forward: the mean loss of the batch
        model.backward_parameters(loss_fn.backward())   # backward: fills every parameter's .grad
        optimizer.step()                                # update the weights
        optimizer.zero_grad()                           # clear .grad for the next batch
        total_loss, seen = total_loss + loss * len(x), seen + len(x)
    accuracy = tn.metrics.accuracy(test_labels, test_predictions(model, test_images))
    say(f"epoch {epoch}/{args.epochs}: training loss {total_loss / seen:.4f}, "
          f"test accuracy {accuracy:.2%}")

if not is_main:
    raise SystemExit  # rank 0 alone reports and saves
predicted = test_predictions(model, test_images)
print(f"test accuracy {tn.metrics.accuracy(test_labels, predicted):.2%}")
precision, recall, _ = tn.metrics.precision_recall_f1(test_labels, predicted, num_classes=10)
print("digit  precision  recall")
for digit in range(10):
    print(f"{digit:>5}  {precision[digit]:>9.2%}  {recall[digit]:>6.2%}")

# Save the weights, load them into a fresh model: it predicts the same digits.
os.makedirs(args.output_dir, exist_ok=True)
path = os.path.join(args.output_dir, "mnist_cnn.npz")
tn.save(model.state_dict(), path)
fresh = make_model().to(args.device)
fresh.load_state_dict(tn.load(path))
print(f"a fresh model loaded from {path}: test accuracy "
      f"{tn.metrics.accuracy(test_labels, test_predictions(fresh, test_images)):.2%}")
