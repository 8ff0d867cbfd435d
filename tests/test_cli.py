"""The recipes in tiny versions (a few hundred images, one epoch) and the command line that runs them.
The full runs that reach the advertised accuracies are in the README's results, not here."""
import subprocess
import sys

import numpy as np
import pytest

import tinynet as tn
from tinynet import cli, recipes


def test_perceptron_learns_the_first_input(capsys):
    result = recipes.perceptron(progress=False)
    assert result["prediction"] > 0.99 and result["loss"] < 1e-3
    assert "new situation [1, 1, 0] -> 0.99" in capsys.readouterr().out


def test_perceptron_step_is_the_classic_update():
    """With lr 2, one MSE gradient step equals w += x.T @ (error * out * (1 - out))."""
    x = np.array([[0, 0, 1], [1, 1, 1], [1, 0, 1], [0, 1, 1]], np.float64)
    y = np.array([[0], [1], [1], [0]], np.float64)
    w = np.random.default_rng(1).uniform(-1, 1, (3, 1))
    out = 1 / (1 + np.exp(-x @ w))
    classic = w + x.T @ ((y - out) * out * (1 - out))

    model = tn.Sequential(tn.Linear(3, 1, bias=False, dtype=np.float64), tn.Sigmoid())
    model[0].weight.data = w.T.copy()
    loss_fn = tn.MSELoss()
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    tn.optim.SGD(model.parameters(), lr=2.0).step()
    np.testing.assert_allclose(model[0].weight.data.T, classic, rtol=1e-12)


def test_three_vs_seven(mnist_root):
    result = recipes.three_vs_seven(epochs=30, data_root=mnist_root, train_samples=3000, test_samples=1000,
                                    progress=False)
    assert result["test_accuracy"] > 0.95


def test_mlp_recipe_saves_weights_that_reload(mnist_root, tmp_path, capsys):
    result = recipes.mnist_mlp(epochs=1, data_root=mnist_root, output_dir=tmp_path, train_samples=400,
                               test_samples=200, augment=True, schedule="cosine", progress=False)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "accuracy per digit: 0:" in out
    assert result["test_accuracy"] > 0.2 and len(result["per_class_accuracy"]) == 10
    assert list(result["history"]) == ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    model = recipes.mlp_model()
    model.load_state_dict(tn.load(result["weights"]))
    images, labels = tn.datasets.mnist(mnist_root, train=False)
    predicted = tn.predict(model, recipes.standardize(images[:200])).argmax(1)
    assert tn.metrics.accuracy(labels[:200], predicted) == result["test_accuracy"]


def test_standardize_centres_the_training_pixels(mnist_root):
    images, _ = tn.datasets.mnist(mnist_root, train=True)
    standardized = recipes.standardize(images)
    assert standardized.dtype == np.float32
    assert abs(standardized.mean()) < 1e-3 and abs(standardized.std() - 1) < 1e-3


def test_augmenting_standardized_images_brings_in_their_background():
    blank = recipes.standardize(np.zeros((8, 1, 28, 28), np.float32))
    augment = recipes.default_augmentation(fill=-recipes.MNIST_MEAN / recipes.MNIST_STD)
    warped, _ = augment((blank, None), np.random.default_rng(0))
    np.testing.assert_allclose(warped, blank, rtol=1e-6)


def test_cnn_recipe_reports_per_class_and_reloads(mnist_root, tmp_path, capsys):
    result = recipes.mnist_cnn(epochs=1, data_root=mnist_root, output_dir=tmp_path, train_samples=400,
                               test_samples=200, batch_size=20, lr=3e-3, progress=False, plots=True)
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and "a fresh model loaded from" in out
    assert result["reloaded_accuracy"] == result["test_accuracy"] > 0.2
    assert len(result["precision"]) == len(result["recall"]) == 10
    for figure in ("history", "predictions", "confusion", "filters"):
        assert (tmp_path / f"mnist_cnn_{figure}.png").stat().st_size > 1000


def test_wider_cnn_defaults_to_augmentation_and_one_cycle(mnist_root, tmp_path):
    result = recipes.mnist_cnn(epochs=1, wider=True, data_root=mnist_root, output_dir=tmp_path, train_samples=120,
                               test_samples=60, batch_size=10, lr=3e-3, progress=False)
    lrs = result["history"]["lr"]
    assert lrs == [pytest.approx(3e-3 / 25)]  # one-cycle starts at max_lr / div_factor
    assert result["weights"].endswith("mnist_cnn_wider.npz")
    assert recipes.cnn_model(wider=True)[0].out_channels == 32


def test_command_line_runs_a_recipe(mnist_root, tmp_path, capsys):
    status = cli.main(["train", "cnn", "--epochs", "1", "--train-samples", "120", "--test-samples", "60",
                       "--data-root", mnist_root, "--output-dir", str(tmp_path), "--no-progress", "--schedule", "none",
                       "--batch-size", "30", "--seed", "3"])
    assert status == 0
    assert "test accuracy" in capsys.readouterr().out and (tmp_path / "mnist_cnn.npz").is_file()


def test_command_line_refuses_options_a_recipe_does_not_take(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "perceptron", "--augment"])
    assert info.value.code == 2
    assert "tinynet train: error: --augment does not apply to perceptron (its options: --epochs --lr --seed " \
           "--device --no-progress)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "resnet"])
    assert "invalid choice: 'resnet'" in capsys.readouterr().err


def test_command_line_reports_errors_without_a_traceback(tmp_path, capsys):
    status = cli.main(["train", "mlp", "--schedule", "cosine", "--data-root", str(tmp_path)])  # no MNIST there
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("tinynet train mlp: error: ") and "Traceback" not in err and err.count("\n") == 1


def test_python_dash_m_tinynet():
    done = subprocess.run([sys.executable, "-m", "tinynet", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"tinynet {tn.__version__}"
    done = subprocess.run([sys.executable, "-m", "tinynet", "train", "--help"], capture_output=True, text=True, check=True)
    assert "{perceptron,three-vs-seven,mlp,cnn}" in done.stdout


@pytest.mark.parametrize("recipe, options, message", [
    ("cnn", ["--epochs", "0"], "mnist_cnn: epochs must be a positive integer, got 0"),
    ("perceptron", ["--epochs", "0"], "perceptron: epochs must be a positive integer, got 0"),
    ("mlp", ["--train-samples", "-5"], "mnist_mlp: train_samples must be a positive integer, got -5"),
    ("three-vs-seven", ["--test-samples", "0"], "three_vs_seven: test_samples must be a positive integer, got 0"),
    ("mlp", ["--batch-size", "0"], "mnist_mlp: batch_size must be a positive integer, got 0"),
    ("mlp", ["--lr", "-1"], "mnist_mlp: lr must be > 0, got -1.0"),
    ("cnn", ["--lr", "nan"], "mnist_cnn: lr must be a finite real number, got nan"),
    ("cnn", ["--output-dir", "{file}/sub"], "mnist_cnn: cannot write to output_dir '{file}/sub': "),
])
def test_command_line_checks_every_option_before_reading_data(tmp_path, capsys, monkeypatch, recipe, options, message):
    """One line on stderr and exit status 2, before any data is read (there is none at --data-root)."""
    read = []
    monkeypatch.setattr(tn.datasets, "mnist", lambda *args, **kwargs: read.append(args) or 1 / 0)
    file = tmp_path / "a-file"
    file.write_text("")
    options = [option.format(file=file) for option in options]
    data_root = ["--data-root", str(tmp_path)] if recipe != "perceptron" else []
    status = cli.main(["train", recipe, *options, *data_root])
    err = capsys.readouterr().err
    assert status == 2 and read == []
    assert err.startswith(f"tinynet train {recipe}: error: {message.format(file=file)}") and err.count("\n") == 1


def test_command_line_reports_bad_labels_in_one_line(tmp_path, capsys, monkeypatch):
    images = np.zeros((20, 1, 28, 28), np.float32)
    monkeypatch.setattr(tn.datasets, "mnist", lambda *args, **kwargs: (images, np.full(20, 12, np.int64)))
    status = cli.main(["train", "mlp", "--epochs", "1", "--output-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("tinynet train mlp: error: CrossEntropyLoss: Target 12 is out of bounds")
