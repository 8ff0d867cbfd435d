"""The example scripts: each one's command line offers exactly its recipe's options and runs it."""
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinynet import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = {"perceptron.py": "perceptron", "three_vs_seven.py": "three-vs-seven", "mnist_mlp.py": "mlp",
           "mnist_cnn.py": "cnn"}


def run_script(script, *args):
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True)


def test_every_example_is_listed():
    # mnist_resnet.py writes its loop out instead of calling a recipe; test_residual.py runs it.
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted([*SCRIPTS, "mnist_resnet.py"])


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_the_recipe_s_options_and_defaults(script):
    done = run_script(script, "--help")
    assert done.returncode == 0, done.stderr
    recipe = cli.RECIPES[SCRIPTS[script]]
    flags = {flag for flag, keywords in cli.OPTIONS if cli._dest(flag, keywords) in inspect.signature(recipe).parameters}
    usage = done.stdout.split("\n\n")[0]
    offered = set(re.findall(r"\[(--[a-z-]+)", usage)) - {"--help"}
    assert offered == flags and {"--epochs", "--seed"} <= flags
    assert f"usage: {script}" in done.stdout
    assert f"(default: {inspect.signature(recipe).parameters['epochs'].default})" in done.stdout


def test_perceptron_script_predicts_the_new_situation():
    done = run_script("perceptron.py", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "new situation [1, 1, 0] -> 0.99" in done.stdout


def test_cnn_script_trains_saves_and_reloads(mnist_root, tmp_path):
    done = run_script("mnist_cnn.py", "--epochs", 1, "--train-samples", 300, "--test-samples", 100, "--batch-size", 30,
                      "--data-root", mnist_root, "--output-dir", tmp_path, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "precision" in done.stdout and "recall" in done.stdout
    tested = done.stdout.split("test accuracy ")[1].split("%")[0]
    assert f"a fresh model loaded from {tmp_path / 'mnist_cnn.npz'}: test accuracy {tested}%" in done.stdout


def test_a_script_refuses_an_option_its_recipe_does_not_take():
    done = run_script("perceptron.py", "--batch-size", 4)
    assert done.returncode == 2
    assert "perceptron.py: error: unrecognized arguments: --batch-size 4" in done.stderr


def test_a_script_reports_missing_data_in_one_line(tmp_path):
    done = run_script("three_vs_seven.py", "--data-root", tmp_path / "nowhere", "--no-progress")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("three_vs_seven.py: error: ") and "Traceback" not in done.stderr
    assert str(tmp_path / "nowhere") in done.stderr
