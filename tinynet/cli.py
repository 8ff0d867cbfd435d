"""The ``tinynet`` command: ``tinynet train {perceptron,three-vs-seven,mlp,cnn} [options]``;
``tinynet warm-up`` compiles the CPU kernels ahead (see ``tinynet.kernels.compiling``).

Each recipe is a function in ``tinynet.recipes``; the command passes on only the
options given on the command line, so every default lives in one place, the
recipe's signature. An option a recipe does not take is refused by name.

    tinynet train cnn --epochs 10 --plots --output-dir runs/cnn
    mpiexec -n 4 tinynet train cnn --distributed   # data-parallel over 4 processes (tinynet.distributed)
    tinynet train mlp --augment --schedule cosine --epochs 30
    python -m tinynet train perceptron
    python -m tinynet warm-up
"""
import argparse
import inspect
import sys

from . import __version__, distributed, kernels, recipes

#: Recipe names on the command line -> functions.
RECIPES = {
    "perceptron": recipes.perceptron,
    "three-vs-seven": recipes.three_vs_seven,
    "mlp": recipes.mnist_mlp,
    "cnn": recipes.mnist_cnn,
}

#: ``(flag, add_argument keywords)`` of the train options; each sets the recipe argument of the same name.
OPTIONS = [
    ("--epochs", dict(type=int, help="epochs (full-batch steps for perceptron and three-vs-seven)")),
    ("--batch-size", dict(type=int, help="samples per mini-batch")),
    ("--lr", dict(type=float, help="learning rate (the peak one with --schedule onecycle)")),
    ("--seed", dict(type=int, help="seed of the weights, dropout, shuffling and augmentation")),
    ("--augment", dict(action=argparse.BooleanOptionalAction, help="randomly shift, rotate and zoom the training images")),
    ("--wider", dict(action="store_true", help="cnn: the 32/64-channel network (augmented, one-cycle by default)")),
    ("--schedule", dict(choices=["none", "cosine", "onecycle"], help="learning-rate schedule")),
    ("--device", dict(choices=["cpu", "cuda"], help="where to train (cuda needs CuPy)")),
    ("--data-root", dict(help="folder holding MNIST/raw/ (default: $TINYNET_DATA, else ./data)")),
    ("--output-dir", dict(help="where to write the weights and figures")),
    ("--train-samples", dict(type=int, help="use only the first N training images")),
    ("--test-samples", dict(type=int, help="use only the first N test images")),
    ("--plots", dict(action="store_true", help="save PNG figures (needs matplotlib)")),
    ("--no-progress", dict(dest="progress", action="store_false", help="no progress bars")),
    ("--distributed", dict(action="store_true", help="data-parallel over the processes of `mpiexec -n N` "
                                                     "(needs mpi4py and an MPI: pip install tinynet[distributed])")),
]


def build_parser():
    """The argument parser, and its ``train`` sub-parser."""
    parser = argparse.ArgumentParser(prog="tinynet", description="tinynet: a NumPy neural-network library.")
    parser.add_argument("--version", action="version", version=f"tinynet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train", help="train one of the example models",
        description="Train one of the example models and print its test results. "
                    "Options left out take the recipe's defaults (see tinynet.recipes).",
        argument_default=argparse.SUPPRESS,  # only the options given reach the recipe
    )
    train.add_argument("recipe", choices=list(RECIPES), help="which model to train")
    for flag, keywords in OPTIONS:
        train.add_argument(flag, **keywords)
    commands.add_parser(
        "warm-up", help="compile the CPU kernels now (for container images and CI)",
        description="Compile tinynet's numba kernels for float32 and float64 into numba's on-disk cache, so that "
                    "no later process compiles them (see tinynet.kernels.compiling).",
    )
    return parser, train


def _dest(flag, keywords):
    """The recipe argument that ``flag`` sets."""
    return keywords.get("dest", flag[2:].replace("-", "_"))


def _flag(dest):
    """The command-line flag that sets recipe argument ``dest``."""
    return next(flag for flag, keywords in OPTIONS if _dest(flag, keywords) == dest)


#: What a user's mistake raises (a bad option value, missing or bad data, a missing package, a
#: diverging run); anything else is a bug in tinynet and keeps its traceback.
USER_ERRORS = (ImportError, OSError, RuntimeError, ValueError, KeyError, IndexError)


def _run(name, args, prog):
    """Call recipe ``name`` with the parsed ``args`` (which checks them all before it reads any
    data); returns the exit status, 2 with one line on stderr on ``prog``'s behalf for a user's
    mistake (``USER_ERRORS``), as argparse does for a malformed option."""
    if args.get("schedule") == "none":
        args["schedule"] = None
    try:
        RECIPES[name](**args)
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # str(KeyError) adds quotes
        print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
        if args.get("distributed"):
            distributed.abort_job(2)  # the other processes would wait for this one forever
        return 2
    return 0


def main(argv=None):
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser, train = build_parser()
    args = vars(parser.parse_args(argv))
    if args.pop("command") == "warm-up":
        kernels.warm_up()
        return 0
    name = args.pop("recipe")
    accepted = inspect.signature(RECIPES[name]).parameters
    for dest in args:
        if dest not in accepted:
            takes = " ".join(_flag(p) for p in accepted)
            train.error(f"{_flag(dest)} does not apply to {name} (its options: {takes})")
    return _run(name, args, f"tinynet train {name}")
