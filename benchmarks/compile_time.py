"""How long the first training step of the MNIST CNN takes in a new process: with numba's on-disk
cache empty (the kernels are compiled) and with it filled (they are loaded).

    python benchmarks/compile_time.py

Each measurement is a fresh ``python`` process that imports tinynet, builds the recipe's CNN and
times its first float32 training step at batch 60 (forward, loss, backward, Adam) minus a second
step's time, which leaves what compiling or loading the kernels cost. The cache is a temporary
folder (``NUMBA_CACHE_DIR``), so the cache next to tinynet's sources is left as it was.
"""
import json
import os
import subprocess
import sys
import tempfile

FIRST_STEP = """
import json, time
import numpy as np
start = time.perf_counter()
import tinynet as tn
from tinynet.recipes import cnn_model
imported = time.perf_counter()
model, loss_fn = cnn_model(), tn.CrossEntropyLoss()
optimizer = tn.optim.Adam(model.parameters(), lr=1e-3)
x, y = np.random.default_rng(0).random((60, 1, 28, 28), dtype=np.float32), np.arange(60) % 10

def step():
    begin = time.perf_counter()
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - begin

first, second = step(), step()
print(json.dumps({"import_s": imported - start, "kernels_s": first - second}))
"""


def measure(cache_dir):
    done = subprocess.run([sys.executable, "-c", FIRST_STEP], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": cache_dir})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache_dir:
        compiled = measure(cache_dir)
        loaded = measure(cache_dir)
    print(f"{'':<34} {'import tinynet (s)':>18} {'kernels (s)':>12}")
    print(f"{'first process (empty cache)':<34} {compiled['import_s']:>18.2f} {compiled['kernels_s']:>12.2f}")
    print(f"{'second process (cache filled)':<34} {loaded['import_s']:>18.2f} {loaded['kernels_s']:>12.2f}")


if __name__ == "__main__":
    main()
