"""Vanishing gradients, measured: a deep sigmoid MLP against the same net with ReLU, on MNIST.

Both nets are 784 -> 7 hidden layers of 64 -> 10 with the same initial weights (He's normal
initialisation, made for ReLU, and zero biases), trained with SGD (lr 0.1, batch 64) on the same
batches; ``fit(record="grad_norms", record_every=10)`` records each
parameter's gradient norm and each layer's output norm. Prints the first and last layers' weight
gradient norms and the test accuracy, and draws ``tinynet.plots.gradient_flow`` for each net.

    python benchmarks/gradient_flow.py [--steps 400] [--out docs]
"""
import argparse
from pathlib import Path

import numpy as np

import tinynet as tn
from tinynet.plots import gradient_flow

HIDDEN, DEPTH = 64, 7


def mlp(activation):
    tn.manual_seed(0)  # the same weights for both activations
    layers, width = [tn.Flatten()], 784
    for _ in range(DEPTH):
        layers += [tn.Linear(width, HIDDEN), activation()]
        width = HIDDEN
    model = tn.Sequential(*layers, tn.Linear(width, 10))
    for module in model.modules():
        if isinstance(module, tn.Linear):
            tn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            tn.init.zeros_(module.bias)
    return model


def save_small_png(figure, path):
    """The figure at 72 dpi in 64 colours: a picture for a README, not for print."""
    from PIL import Image

    figure.savefig(path, format="png", dpi=72)
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    args = parser.parse_args()
    x_train, y_train = tn.datasets.mnist(train=True)
    x_test, y_test = tn.datasets.mnist(train=False)
    n = 64 * args.steps
    first, last = "1.weight", f"{2 * DEPTH + 1}.weight"
    for name, activation in (("sigmoid", tn.Sigmoid), ("relu", tn.ReLU)):
        model = mlp(activation)
        loader = tn.data.DataLoader(x_train[:n], y_train[:n], batch_size=64, shuffle=True, seed=0)
        history = tn.fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), loader,
                         record="grad_norms", record_every=10, progress=False)
        test = tn.evaluate(model, tn.CrossEntropyLoss(), tn.data.DataLoader(x_test, y_test, batch_size=1000))
        g_first, g_last = np.array(history[f"grad_norm:{first}"]), np.array(history[f"grad_norm:{last}"])
        print(f"{name:>7}: step 1 |grad {first}| {g_first[0]:.3g}, |grad {last}| {g_last[0]:.3g}, "
              f"ratio {g_first[0] / g_last[0]:.2g}; median over {len(g_first)} recorded steps ratio "
              f"{np.median(g_first / g_last):.2g}; after {args.steps} steps train loss {history['loss'][-1]:.3f}, "
              f"test accuracy {test['accuracy']:.4f}")
        figure = gradient_flow(history, title=f"{DEPTH + 1} Linear layers with {name}, SGD lr 0.1, batch 64")
        save_small_png(figure, Path(args.out) / f"gradient_flow_{name}.png")


if __name__ == "__main__":
    main()
