"""The example scripts, run as a learner runs them, on a small MNIST (600 training and 200 test
images written as IDX files). The full runs behind the README's results table are not repeated here."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_idx
from test_distributed import needs_mpi, run_job

import tinynet as tn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = ["perceptron.py", "three_vs_seven.py", "mnist_mlp.py", "mnist_cnn.py"]


def run_script(script, *args):
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def small_mnist(mnist_root, tmp_path_factory):
    """A data root holding the first 600 training and 200 test images of MNIST."""
    root = tmp_path_factory.mktemp("small_mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for train, prefix, count in [(True, "train", 600), (False, "t10k", 200)]:
        images, labels = tn.datasets.mnist(mnist_root, train=train)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.rint(images[:count, 0] * 255))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[:count])
    return root


def percent(text, before):
    """The percentage printed right after ``before``."""
    return float(re.search(re.escape(before) + r" (\d+\.\d\d)%", text).group(1))


def test_every_example_is_tested():
    # mnist_resnet.py is tested by test_residual.py.
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted([*SCRIPTS, "mnist_resnet.py"])


@pytest.mark.parametrize("script", [*SCRIPTS, "mnist_resnet.py"])
def test_an_example_is_short_and_uses_only_the_public_api(script):
    source = (EXAMPLES / script).read_text()
    assert len(source.splitlines()) <= 120
    imported = set(re.findall(r"^(?:import|from) (\S+)", source, re.M))
    assert imported <= {"argparse", "os", "time", "numpy", "tinynet"}
    assert not re.search(r"tn\.\w+\._", source)  # nothing private


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_example_offers_few_flags(script):
    usage = run_script(script, "--help").split("\n\n")[0]
    allowed = {"--epochs", "--data-root", "--device", "--output-dir"}
    if script == "mnist_cnn.py":
        allowed.add("--distributed")
    assert set(re.findall(r"\[(--[a-z-]+)", usage)) - {"--help"} <= allowed


def test_perceptron_predicts_the_new_situation():
    out = run_script("perceptron.py", "--epochs", 20_000)
    assert re.search(r"loss 0\.0000\d\d\n", out)
    assert float(out.split("new situation [1, 1, 0] -> ")[1]) > 0.999


def test_three_vs_seven_learns(small_mnist):
    out = run_script("three_vs_seven.py", "--epochs", 30, "--data-root", small_mnist)
    assert out.startswith("121 training and 40 test images of 3s and 7s\n")
    losses = [float(loss) for loss in re.findall(r"training loss (\S+)", out)]
    assert len(losses) == 3 and losses[0] > losses[-1]
    assert percent(out, "test accuracy on 3s and 7s") >= 90.0


def test_mlp_trains_and_saves(small_mnist, tmp_path):
    out = run_script("mnist_mlp.py", "--epochs", 2, "--data-root", small_mnist, "--output-dir", tmp_path)
    assert "epoch 1/2: training loss" in out and "epoch 2/2: training loss" in out
    last_epoch = out.split("epoch 2/2: ")[1].split("\n")[0]
    assert percent(last_epoch, "test accuracy") == percent(out, "\ntest accuracy") > 50
    per_digit = re.findall(r"(\d): (\d+\.\d\d)%", out.split("accuracy per digit: ")[1])
    assert [digit for digit, _ in per_digit] == list("0123456789")
    state = tn.load(tmp_path / "mnist_mlp.npz")
    assert sorted(state) == ["1.bias", "1.weight", "4.bias", "4.weight", "7.bias", "7.weight"]


def test_cnn_trains_reports_saves_and_reloads(small_mnist, tmp_path):
    out = run_script("mnist_cnn.py", "--epochs", 1, "--data-root", small_mnist, "--output-dir", tmp_path)
    assert out.startswith("600 training images, 200 test images\n")
    tested = percent(out, "\ntest accuracy")
    assert tested > 20  # one epoch over 600 images; chance is 10%
    rows = re.findall(r"^ {4}(\d) +(\d+\.\d\d)% +(\d+\.\d\d)%$", out, re.M)
    assert [digit for digit, *_ in rows] == list("0123456789")
    assert f"a fresh model loaded from {tmp_path / 'mnist_cnn.npz'}: test accuracy {tested:.2f}%" in out


@needs_mpi
def test_cnn_trains_data_parallel_on_two_processes(small_mnist, tmp_path):
    """Rank 0 alone reports and saves; the two processes' global batch of 60 gives the one-process
    run's accuracy (float32 sums in another order: at most one of the 200 test images apart)."""
    options = [EXAMPLES / "mnist_cnn.py", "--epochs", 1, "--data-root", small_mnist]
    done = run_job([*options, "--distributed", "--output-dir", tmp_path / "two"], timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("600 training images") == 1 and done.stdout.count("epoch 1/1") == 1
    single = subprocess.run([sys.executable, *map(str, options), "--output-dir", str(tmp_path / "one")],
                            capture_output=True, text=True, check=True).stdout
    assert abs(percent(done.stdout, "\ntest accuracy") - percent(single, "\ntest accuracy")) <= 0.5
    assert (tmp_path / "two" / "mnist_cnn.npz").is_file()

