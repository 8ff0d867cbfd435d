"""The MNIST CNN, tinynet's main example.

    Conv2d(1, 8, 3, padding=1) - ReLU - MaxPool2d(2) - Conv2d(8, 16, 3, padding=1) - ReLU -
    MaxPool2d(2) - Flatten - Linear(784, 10); Adam lr 0.001, batch 60, shuffled.

    python examples/mnist_cnn.py                    # 10 epochs
    python examples/mnist_cnn.py --device cuda      # on an NVIDIA GPU (needs CuPy)
    python examples/mnist_cnn.py --wider --epochs 15 --plots
                                                    # 32/64 channels, augmentation, one-cycle lr

Prints the test accuracy and the precision and recall of each class, saves the weights to
``<output-dir>/mnist_cnn.npz``, loads them into a fresh model and prints that model's accuracy,
which is the same. MNIST is read from ``--data-root``, else ``$TINYNET_DATA``, else downloaded
by torchvision into ``./data``.

The model and the loop live in ``tinynet/recipes.py`` (``mnist_cnn``), shared with
``tinynet train cnn``.
"""
import sys

from tinynet.cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("cnn"))
