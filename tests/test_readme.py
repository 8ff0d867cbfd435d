"""The README's Python examples run as printed, and its error examples print what tinynet says."""
import builtins
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import too_slow_as_python

import tinynet as tn

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@too_slow_as_python("the README's epoch of the CNN over all of MNIST takes about an hour")
def test_the_python_examples_run(mnist_root, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) == 3
    monkeypatch.setenv("TINYNET_DATA", mnist_root)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["history"]["val_accuracy"][0] > 0.95
    assert (tmp_path / "cnn.npz").is_file()


def test_the_error_examples_are_what_tinynet_says():
    session = re.search(r"```text\n(.*?)```", README, re.S).group(1)
    logits = np.zeros((60, 10), np.float32)
    for command, message in re.findall(r">>> (.*)\n(.*)\n", session):
        error_type, expected = message.split(": ", 1)
        with pytest.raises(getattr(builtins, error_type), match=f"^{re.escape(expected)}$"):
            eval(command, {"tn": tn, "np": np, "logits": logits})
