"""Training recipes: the classic examples as functions with every option, run by ``tinynet train``.

    tinynet train cnn --epochs 10          # the command line calls mnist_cnn(epochs=10)

The scripts in ``examples/`` write the same models and loops out for a reader; these recipes add
augmentation, schedules, the wider CNN and figures, and train with ``fit``.

Each recipe builds its model and data, trains, prints what it found and returns
it as a dict. Options common to the MNIST recipes:

* ``epochs``, ``batch_size``, ``lr``, ``seed``: the usual; the seed fixes the initial
  weights, dropout masks, shuffling and augmentation, so a run repeats exactly.
* ``augment``: random shifts, small rotations and zooms of the training images
  (``tinynet.augment.RandomAffine``), drawn afresh every epoch.
* ``schedule``: ``None`` (constant lr), ``"cosine"`` (per epoch, down to 0) or
  ``"onecycle"`` (per step, peaking at ``lr``).
* ``device``: ``"cpu"`` or ``"cuda"`` (needs CuPy).
* ``data_root``: the folder holding ``MNIST/raw/`` (default ``$TINYNET_DATA``, else ``./data``).
* ``output_dir``: where weights (and, with ``plots=True``, PNG figures) are written.
* ``train_samples``, ``test_samples``: use only the first N images (quick trial runs).
* ``progress``: draw progress bars (needs tqdm).
* ``distributed`` (MLP and CNN): data-parallel training over the processes of an MPI job
  (``mpiexec -n 4 tinynet train cnn --distributed``; see ``tinynet.distributed``). Each process
  trains on ``batch_size`` samples of every global batch of ``batch_size`` times the number of
  processes, at the same learning rate; rank 0 alone prints and writes files. Outside
  ``mpiexec`` it is a job of one process, the same run as without ``distributed``.
"""
import os
import tempfile

import numpy as np

from . import augment as augmentation
from . import datasets, distributed as data_parallel, init, metrics, nn
from ._checks import positive_int, real_number
from .backend import check_device, get_array_module, to_device, to_numpy
from .data import DataLoader
from .losses import CrossEntropyLoss, MSELoss
from .optim import SGD, Adam
from .rng import manual_seed
from .schedules import CosineAnnealingLR, OneCycleLR
from .serialization import load, save
from .train import fit, predict, progress_bar

SCHEDULES = (None, "cosine", "onecycle")

#: Mean and standard deviation of the MNIST training pixels in [0, 1] (those of PyTorch's MNIST example).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


# --- models ------------------------------------------------------------------------

def mlp_model():
    """784-512-512-10 with ReLU and Dropout(0.2): (N, 1, 28, 28) images -> (N, 10) logits."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 10),
    )


def cnn_model(wider=False):
    """The MNIST CNN: (N, 1, 28, 28) images -> (N, 10) logits.

    Default: conv 8 -> pool -> conv 16 -> pool -> linear (16 * 7 * 7 = 784 -> 10).
    ``wider``: conv 32 -> pool -> conv 64 -> pool -> linear 3136 -> 128 -> dropout -> 10.
    """
    if not wider:
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
        )
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10),
    )


def default_augmentation(fill=0.0):
    """The augmentation of ``augment=True``: up to 10 degrees, 2 pixels and 10% zoom; pixels
    brought in from outside the image take the value ``fill`` (the background's)."""
    return augmentation.RandomAffine(degrees=10, translate=2, scale=(0.9, 1.1), fill=fill)


def standardize(images):
    """``(images - MNIST_MEAN) / MNIST_STD`` in the images' dtype: the inputs the MLP recipe's
    weights expect (the background, 0, becomes -0.4242)."""
    xp = get_array_module(images)
    return (images - xp.asarray(MNIST_MEAN, images.dtype)) / xp.asarray(MNIST_STD, images.dtype)


# --- shared steps ------------------------------------------------------------------

def _check_arguments(recipe, epochs, lr, batch_size=1, train_samples=None, test_samples=None, output_dir=None,
                     schedule=None):
    """Check a recipe's arguments before it reads any data or trains (ValueError/TypeError naming
    the argument). ``output_dir`` is created if need be and must take a new file, so that the
    weights of a finished run are never lost to an unwritable folder."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("train_samples", train_samples),
                        ("test_samples", test_samples)):
        if value is not None:
            positive_int(recipe, name, value)
    if real_number(recipe, "lr", lr) <= 0:
        raise ValueError(f"{recipe}: lr must be > 0, got {lr!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"{recipe}: schedule must be one of {SCHEDULES}, got {schedule!r}")
    if output_dir is not None:
        try:
            os.makedirs(output_dir, exist_ok=True)
            with tempfile.TemporaryFile(dir=output_dir):
                pass
        except OSError as err:
            raise ValueError(f"{recipe}: cannot write to output_dir {output_dir!r}: {err.strerror or err}") from None


def _gradient_descent(model, loss_fn, optimizer, x, y, steps, progress, description):
    """``steps`` full-batch steps of forward, loss, backward, update; returns the last loss."""
    bar = progress_bar(steps, description, progress, unit="step")
    try:
        for _ in range(steps):
            loss = loss_fn(model(x), y)
            model.backward_parameters(loss_fn.backward())
            optimizer.step()
            optimizer.zero_grad()
            if bar is not None and bar.update(1):
                bar.set_postfix(loss=f"{loss:.5f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return loss


def _mnist(data_root, train, samples, device):
    """MNIST images and labels (the first ``samples`` of them, if given) on ``device``."""
    images, labels = datasets.mnist(data_root, train=train)
    if samples is not None:
        images, labels = images[:samples], labels[:samples]
    return to_device(images, device), to_device(labels, device)


def _schedule(name, optimizer, lr, epochs, steps_per_epoch):
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if name == "onecycle":
        return OneCycleLR(optimizer, max_lr=lr, epochs=max(epochs, 1), steps_per_epoch=steps_per_epoch)
    return None


def _output_path(output_dir, filename):
    os.makedirs(output_dir, exist_ok=True)
    return os.path.join(output_dir, filename)


def _test_report(model, images, labels, batch_size=1000):
    """Test loss, accuracy and accuracy per digit, printed and returned, with the predictions."""
    logits = predict(model, images, batch_size=batch_size)
    loss = CrossEntropyLoss()(logits, labels)
    predicted, labels = to_numpy(logits.argmax(axis=1)), to_numpy(labels)
    accuracy = metrics.accuracy(labels, predicted)
    per_digit = metrics.per_class_accuracy(labels, predicted, num_classes=10)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.2%}")
    print("accuracy per digit: " + "  ".join(f"{d}: {a:.2%}" for d, a in enumerate(per_digit)))
    return {"test_loss": loss, "test_accuracy": accuracy, "per_class_accuracy": per_digit.tolist()}, predicted


def _save_plots(name, output_dir, history, model, images, predicted, labels):
    from . import plots

    labels = to_numpy(labels)
    plots.plot_history(history, _output_path(output_dir, f"{name}_history.png"))
    plots.plot_predictions(images[:32], predicted[:32], labels[:32], _output_path(output_dir, f"{name}_predictions.png"))
    plots.plot_confusion_matrix(metrics.confusion_matrix(labels, predicted, 10),
                                _output_path(output_dir, f"{name}_confusion.png"))
    if any(len(p.shape) == 4 for p in model.parameters()):
        plots.plot_filters(model, _output_path(output_dir, f"{name}_filters.png"))
    print(f"figures written to {output_dir}/{name}_*.png")


def _seed(seed, distributed):
    """Seed the default generator (one stream per process if ``distributed``); returns the
    communicator of the MPI job, or None."""
    if not distributed:
        manual_seed(seed)
        return None
    comm = data_parallel.init()
    data_parallel.manual_seed(seed, comm)
    if comm.is_main and comm.size > 1:
        print(f"data-parallel on {comm.size} processes: each trains on its share of every global batch")
    return comm


def _classifier(name, model, optimizer, lr, epochs, batch_size, seed, augment, schedule, device, data_root,
                output_dir, train_samples, test_samples, progress, plots, standardized=False, comm=None):
    """Train an MNIST classifier with ``fit`` (validating on the test set), report and save it.
    ``standardized``: the model sees ``standardize(images)`` instead of the images in [0, 1].
    ``comm``: train data-parallel; on processes other than rank 0, return after training with
    ``({"history": ...}, None, None, None)``."""
    x_train, y_train = _mnist(data_root, True, train_samples, device)
    x_test, y_test = _mnist(data_root, False, test_samples, device)
    test_images = x_test  # in [0, 1], for the figures
    fill = 0.0
    if standardized:
        x_train, x_test, fill = standardize(x_train), standardize(x_test), -MNIST_MEAN / MNIST_STD
    train_loader = DataLoader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=seed,
                              transform=default_augmentation(fill) if augment else None, shard=comm)
    test_loader = DataLoader(x_test, y_test, batch_size=1000)
    if comm is not None:
        optimizer = data_parallel.DistributedOptimizer(optimizer, comm)
    scheduler = _schedule(schedule, optimizer, lr, epochs, len(train_loader))
    history = fit(model, CrossEntropyLoss(), optimizer, train_loader, test_loader, epochs=epochs,
                  scheduler=scheduler, progress=progress, comm=comm)
    if comm is not None and not comm.is_main:
        return {"history": history}, None, None, None
    results, predicted = _test_report(model, x_test, y_test)
    results["history"] = history
    results["weights"] = _output_path(output_dir, f"{name}.npz")
    save(model.state_dict(), results["weights"])
    print(f"weights saved to {results['weights']}")
    if plots:
        _save_plots(name, output_dir, history, model, to_numpy(test_images), predicted, y_test)
    return results, x_test, y_test, predicted


# --- the recipes -------------------------------------------------------------------

def perceptron(epochs=20_000, lr=2.0, seed=1, device="cpu", progress=True):
    """The single-neuron classic: learn that the output is the first of three inputs.

    Inputs [[0,0,1], [1,1,1], [1,0,1], [0,1,1]] with outputs [0, 1, 1, 0]; one Linear(3, 1)
    (no bias: the constant third input plays its part) and a Sigmoid, weights drawn uniformly
    from [-1, 1) with ``seed``, then ``epochs`` full-batch steps of gradient descent on the mean
    squared error. With lr 2 each step equals the classic update ``w += x.T @ (error * sigmoid')``
    (the mean over 4 samples and the 2 of the square's derivative cancel it).

    Returns ``{"loss": final loss, "prediction": output for the new input [1, 1, 0]}`` (close to 1).
    """
    _check_arguments("perceptron", epochs, lr)
    device = check_device(device)
    manual_seed(seed)
    x = to_device(np.array([[0, 0, 1], [1, 1, 1], [1, 0, 1], [0, 1, 1]], np.float32), device)
    y = to_device(np.array([[0], [1], [1], [0]], np.float32), device)
    model = nn.Sequential(nn.Linear(3, 1, bias=False), nn.Sigmoid())
    init.uniform_(model[0].weight, -1.0, 1.0, rng=np.random.default_rng(seed))
    model.to(device)
    print(f"initial weights: {to_numpy(model[0].weight.data).ravel()}")
    loss = _gradient_descent(model, MSELoss(), SGD(model.parameters(), lr=lr), x, y, epochs, progress, "perceptron")
    new_input = to_device(np.array([[1, 1, 0]], np.float32), device)
    prediction = float(to_numpy(predict(model, new_input))[0, 0])
    print(f"weights after {epochs} steps: {to_numpy(model[0].weight.data).ravel()}, loss {loss:.6f}")
    print(f"new situation [1, 1, 0] -> {prediction:.5f}")
    return {"loss": loss, "prediction": prediction}


def three_vs_seven(epochs=100, lr=5.0, seed=0, device="cpu", data_root=None, train_samples=None, test_samples=None,
                   progress=True):
    """Tell MNIST 3s (label 1) from 7s (label 0) with one Linear(784, 1) and a Sigmoid.

    Full-batch gradient descent on the mean squared error: one step per epoch over all the
    training 3s and 7s; the accuracy is measured on the test set's 3s and 7s (threshold 0.5).
    ``train_samples``/``test_samples`` limit the images read before the 3s and 7s are picked.

    Returns ``{"test_loss": ..., "test_accuracy": ...}``.
    """
    _check_arguments("three_vs_seven", epochs, lr, train_samples=train_samples, test_samples=test_samples)
    device = check_device(device)
    manual_seed(seed)

    def threes_and_sevens(train, samples):
        images, labels = datasets.mnist(data_root, train=train)
        images, labels = images[:samples], labels[:samples]
        keep = (labels == 3) | (labels == 7)
        x = images[keep].reshape(-1, 28 * 28)
        y = (labels[keep] == 3).astype(np.float32)[:, None]  # (N, 1) 0/1 targets for the MSE
        return to_device(x, device), to_device(y, device)

    x_train, y_train = threes_and_sevens(True, train_samples)
    x_test, y_test = threes_and_sevens(False, test_samples)
    model = nn.Sequential(nn.Linear(28 * 28, 1), nn.Sigmoid()).to(device)
    loss_fn = MSELoss()
    print(f"{len(x_train)} training and {len(x_test)} test images of 3s and 7s")
    _gradient_descent(model, loss_fn, SGD(model.parameters(), lr=lr), x_train, y_train, epochs, progress, "3 vs 7")
    output = predict(model, x_test, batch_size=len(x_test))
    test_loss = loss_fn(output, y_test)
    test_accuracy = int(metrics.count_correct(output, y_test, "threshold", 0.5)) / len(x_test)
    print(f"test loss {test_loss:.4f}, test accuracy on 3s and 7s {test_accuracy:.2%}")
    return {"test_loss": test_loss, "test_accuracy": test_accuracy}


def mnist_mlp(epochs=10, batch_size=16, lr=0.05, seed=0, augment=False, schedule=None, device="cpu", data_root=None,
              output_dir=".", train_samples=None, test_samples=None, progress=True, plots=False, distributed=False):
    """The 784-512-512-10 MLP (``mlp_model``) with cross-entropy and SGD (accuracies: the README's results).

    The model is trained and tested on ``standardize(images)``: plain SGD converges faster on
    inputs centred on 0 (``benchmarks/HISTORY.md`` has the runs), so the saved weights expect
    standardized images too. Prints the test loss, accuracy and
    accuracy per digit, and saves the weights to ``<output_dir>/mnist_mlp.npz``. Returns ``{"test_loss", "test_accuracy",
    "per_class_accuracy", "history", "weights"}``.
    """
    _check_arguments("mnist_mlp", epochs, lr, batch_size, train_samples, test_samples, output_dir, schedule)
    device = check_device(device)
    comm = _seed(seed, distributed)
    model = mlp_model().to(device)
    optimizer = SGD(model.parameters(), lr=lr)
    results, *_ = _classifier("mnist_mlp", model, optimizer, lr, epochs, batch_size, seed, augment, schedule,
                              device, data_root, output_dir, train_samples, test_samples, progress, plots,
                              standardized=True, comm=comm)
    return results


def mnist_cnn(epochs=10, batch_size=60, lr=1e-3, seed=0, wider=False, augment=None, schedule="auto", device="cpu",
              data_root=None, output_dir=".", train_samples=None, test_samples=None, progress=True, plots=False,
              distributed=False):
    """The MNIST CNN (``cnn_model``) with cross-entropy and Adam (accuracies: the README's results).

    ``wider`` trains the 32/64-channel network, by default (``augment=None``, ``schedule="auto"``)
    with augmentation and a one-cycle schedule; pass them explicitly to override that. Prints the test accuracy and
    precision, recall and F1 per class, saves the weights to ``<output_dir>/mnist_cnn.npz``
    (``mnist_cnn_wider.npz``), then loads them into a fresh model and checks it scores the same.

    Returns ``{"test_loss", "test_accuracy", "per_class_accuracy", "precision", "recall",
    "history", "weights", "reloaded_accuracy"}``.
    """
    if augment is None:
        augment = wider
    if schedule == "auto":
        schedule = "onecycle" if wider else None
    _check_arguments("mnist_cnn", epochs, lr, batch_size, train_samples, test_samples, output_dir, schedule)
    device = check_device(device)
    name = "mnist_cnn_wider" if wider else "mnist_cnn"
    comm = _seed(seed, distributed)
    model = cnn_model(wider).to(device)
    optimizer = Adam(model.parameters(), lr=lr)
    results, x_test, y_test, predicted = _classifier(
        name, model, optimizer, lr, epochs, batch_size, seed, augment, schedule, device, data_root, output_dir,
        train_samples, test_samples, progress, plots, comm=comm)
    if predicted is None:  # a data-parallel process other than rank 0: rank 0 reports
        return results
    labels = to_numpy(y_test)
    print(metrics.classification_report(labels, predicted, num_classes=10))
    precision, recall, _ = metrics.precision_recall_f1(labels, predicted, num_classes=10)
    results["precision"], results["recall"] = precision.tolist(), recall.tolist()

    fresh = cnn_model(wider).to(device)
    fresh.load_state_dict(load(results["weights"]))
    reloaded = to_numpy(predict(fresh, x_test, batch_size=1000).argmax(axis=1))
    results["reloaded_accuracy"] = metrics.accuracy(labels, reloaded)
    print(f"a fresh model loaded from {results['weights']}: test accuracy {results['reloaded_accuracy']:.2%}")
    return results


__all__ = ["perceptron", "three_vs_seven", "mnist_mlp", "mnist_cnn", "mlp_model", "cnn_model",
           "default_augmentation", "standardize", "MNIST_MEAN", "MNIST_STD", "SCHEDULES"]
