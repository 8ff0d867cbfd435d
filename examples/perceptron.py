"""The classic single neuron: three inputs, a sigmoid, 20,000 steps of backpropagation.

    python examples/perceptron.py               # seed 1, 20,000 steps
    python examples/perceptron.py --epochs 500 --seed 7

Inputs [[0,0,1], [1,1,1], [1,0,1], [0,1,1]] with outputs [0, 1, 1, 0]: the output is the first
input. The weights start uniform in [-1, 1); the script prints them before and after training
and the prediction for the unseen input [1, 1, 0] (close to 1).

The model and the loop live in ``tinynet/recipes.py`` (``perceptron``), shared with
``tinynet train perceptron``.
"""
import sys

from tinynet.cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("perceptron"))
