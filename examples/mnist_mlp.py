"""The MNIST MLP: 784-512-512-10, ReLU, Dropout(0.2), cross-entropy, SGD lr 0.05, batch 16.

    python examples/mnist_mlp.py                    # 10 epochs
    python examples/mnist_mlp.py --augment --schedule cosine --epochs 30
    python examples/mnist_mlp.py --device cuda      # on an NVIDIA GPU (needs CuPy)

Prints the test loss, the test accuracy and the accuracy per digit, and saves the trained
weights to ``<output-dir>/mnist_mlp.npz``. ``--plots`` also writes the loss and accuracy
curves, a grid of test predictions and the confusion matrix as PNG files.

The model and the loop live in ``tinynet/recipes.py`` (``mnist_mlp``), shared with
``tinynet train mlp``.
"""
import sys

from tinynet.cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("mlp"))
