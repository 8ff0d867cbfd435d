"""The classic single neuron: three inputs, a sigmoid, 20,000 steps of backpropagation.

    python examples/perceptron.py                 # 20,000 steps
    python examples/perceptron.py --epochs 500

Four examples of three 0/1 inputs; the output to learn is the first input. One Linear(3, 1)
without bias (the constant third input plays its part) and a Sigmoid, trained by full-batch
gradient descent on the mean squared error. The script prints the weights before and after
training and the prediction for the input [1, 1, 0], which it never saw (close to 1).
"""
import argparse

import numpy as np

import tinynet as tn

parser = argparse.ArgumentParser(description="Train a single sigmoid neuron on four examples.")
parser.add_argument("--epochs", type=int, default=20_000, help="full-batch gradient-descent steps (default: 20000)")
parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default: cpu)")
args = parser.parse_args()

inputs = np.array([[0, 0, 1], [1, 1, 1], [1, 0, 1], [0, 1, 1]], dtype=np.float32)   # (4, 3)
targets = np.array([[0], [1], [1], [0]], dtype=np.float32)                           # (4, 1)
x, y = tn.to_device(inputs, args.device), tn.to_device(targets, args.device)

model = tn.Sequential(tn.Linear(3, 1, bias=False), tn.Sigmoid())
# Weights uniform in [-1, 1), as in the classic version of this example.
tn.init.uniform_(model[0].weight, -1.0, 1.0, rng=np.random.default_rng(1))
model.to(args.device)
loss_fn = tn.MSELoss()
# lr 2 makes each step the classic update w += x.T @ (error * sigmoid'(output)): the MSE's mean
# over the 4 examples and the 2 of the square's derivative cancel it.
optimizer = tn.optim.SGD(model.parameters(), lr=2.0)
print(f"initial weights: {tn.to_numpy(model[0].weight.data).ravel()}")

for step in range(args.epochs):
    loss = loss_fn(model(x), y)                          # forward
    model.backward_parameters(loss_fn.backward())        # backward: fills the weight's .grad
    optimizer.step()                                     # w -= lr * grad
    optimizer.zero_grad()

print(f"weights after {args.epochs} steps: {tn.to_numpy(model[0].weight.data).ravel()}, loss {loss:.6f}")
new_input = tn.to_device(np.array([[1, 1, 0]], dtype=np.float32), args.device)
model.eval()
print(f"new situation [1, 1, 0] -> {float(tn.to_numpy(model(new_input))[0, 0]):.5f}")
