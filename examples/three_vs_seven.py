"""Tell MNIST 3s from 7s with one Linear(784, 1), a sigmoid and the mean squared error.

    python examples/three_vs_seven.py                       # 100 full-batch steps
    python examples/three_vs_seven.py --data-root ../shared/data

Threes are labelled 1, sevens 0. Each step is one full-batch gradient-descent step over every
training 3 and 7; the script prints the test accuracy on the test set's 3s and 7s (threshold 0.5).

The model and the loop live in ``tinynet/recipes.py`` (``three_vs_seven``), shared with
``tinynet train three-vs-seven``.
"""
import sys

from tinynet.cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("three-vs-seven"))
