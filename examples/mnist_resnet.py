"""A small ResNet on MNIST, with the training loop written out.

    stem: Conv2d(1, 16, 3, padding=1) - BatchNorm2d - ReLU - MaxPool2d(2)      28 x 28 -> 14 x 14
    stage 1: residual block 16 -> 16                                           14 x 14
    stage 2: residual block 16 -> 32, stride 2, 1x1-conv + BatchNorm shortcut   7 x 7
    stage 3: residual block 32 -> 64, stride 2, 1x1-conv + BatchNorm shortcut   4 x 4
    AdaptiveAvgPool2d(1) - Flatten - Linear(64, 10)

Each residual block is conv3x3-BN-ReLU-conv3x3-BN, added to its shortcut, then ReLU (He et
al., 2016). SGD with Nesterov momentum and weight decay, a one-cycle learning rate, random
shifts, rotations and zooms of the training images.

    python examples/mnist_resnet.py                  # 12 epochs
    python examples/mnist_resnet.py --epochs 1 --train-samples 2000 --test-samples 1000   # a quick look

Prints the loss, the test accuracy and the seconds of every epoch. MNIST is read from
``--data-root``, else ``$TINYNET_DATA``, else downloaded by torchvision into ``./data``.
"""
import argparse
import time

import numpy as np

import tinynet as tn

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def residual_block(in_channels, out_channels, stride=1):
    """conv-BN-ReLU-conv-BN plus the shortcut, then ReLU: (N, in, H, W) -> (N, out, H/stride, W/stride)."""
    block = tn.Sequential(
        tn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        tn.BatchNorm2d(out_channels),
        tn.ReLU(),
        tn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        tn.BatchNorm2d(out_channels),
    )
    shortcut = None  # the identity, when the shapes already match
    if stride != 1 or in_channels != out_channels:
        shortcut = tn.Sequential(tn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                 tn.BatchNorm2d(out_channels))
    return tn.Sequential(tn.Residual(block, shortcut), tn.ReLU())


def resnet():
    """(N, 1, 28, 28) standardised images -> (N, 10) logits."""
    return tn.Sequential(
        tn.Conv2d(1, 16, 3, padding=1, bias=False), tn.BatchNorm2d(16), tn.ReLU(), tn.MaxPool2d(2),
        residual_block(16, 16),
        residual_block(16, 32, stride=2),
        residual_block(32, 64, stride=2),
        tn.AdaptiveAvgPool2d(1), tn.Flatten(), tn.Linear(64, 10),
    )


def standardize(images):
    return (images - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)


def test_accuracy(model, images, labels, batch_size=1000):
    """The fraction of ``images`` classified correctly, in evaluation mode (BatchNorm's running statistics)."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
    model.train()
    return correct / len(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1, help="the one-cycle peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-samples", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--test-samples", type=int, default=None, help="test on only the first N test images")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()

    tn.manual_seed(args.seed)
    train_images, train_labels = tn.datasets.mnist(args.data_root, train=True)
    test_images, test_labels = tn.datasets.mnist(args.data_root, train=False)
    train_images, train_labels = train_images[:args.train_samples], train_labels[:args.train_samples]
    test_images, test_labels = test_images[:args.test_samples], test_labels[:args.test_samples]
    # Shifting with a fill of 0 before standardising keeps the background the background.
    augment = tn.augment.RandomAffine(degrees=10, translate=2, scale=(0.9, 1.1))
    loader = tn.data.DataLoader(train_images, train_labels, batch_size=args.batch_size, shuffle=True,
                                seed=args.seed, transform=augment)
    test_images = standardize(test_images)

    model = resnet()
    loss_fn = tn.CrossEntropyLoss()
    optimizer = tn.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = tn.schedules.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=len(loader))
    print(f"{sum(p.data.size for p in model.parameters()):,} parameters; {args.epochs} epochs of {len(loader)} steps")

    for epoch in range(1, args.epochs + 1):
        started, total_loss = time.perf_counter(), 0.0
        for x, y in loader:
            loss = loss_fn(model(standardize(x)), y)       # forward
            model.backward_parameters(loss_fn.backward())  # backward: every parameter's .grad
            optimizer.step()
            optimizer.zero_grad()
            schedule.step()
            total_loss += loss
        seconds = time.perf_counter() - started
        accuracy = test_accuracy(model, test_images, test_labels)
        print(f"epoch {epoch}: train loss {total_loss / len(loader):.4f}, test accuracy {accuracy:.2%}, "
              f"{seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
