"""Command-line entry point: ``python -m chainrule train MODEL`` (or ``chainrule train``).

Each model is a module exposing ``run(epochs=..., lr=..., seed=..., verbose=...)``;
register new ones in ``MODELS``. Options left out fall back to the model's defaults.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# model name -> (module with a ``run`` function, one-line description)
MODELS: dict[str, tuple[str, str]] = {
    "logreg": ("chainrule.examples.logreg",
               "logistic regression on the breast-cancer dataset, compared with scikit-learn"),
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _available() -> str:
    return ", ".join(sorted(MODELS))


def build_parser() -> argparse.ArgumentParser:
    """The ``chainrule`` argument parser."""
    models = "\n".join(f"  {name:<10} {desc}" for name, (_, desc) in sorted(MODELS.items()))
    parser = argparse.ArgumentParser(
        prog="chainrule", description="Run chainrule's example models.",
        epilog=f"models:\n{models}", formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train a model and report its metrics",
                                epilog=f"available models: {_available()}")
    train.add_argument("model", metavar="MODEL", help=f"one of: {_available()}")
    train.add_argument("--epochs", type=_positive_int, help="number of training epochs")
    train.add_argument("--lr", type=_positive_float, help="learning rate")
    train.add_argument("--seed", type=int, help="seed for the data split and initialization")
    train.add_argument("--quiet", action="store_true",
                       help="print only the final 'test accuracy' line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model not in MODELS:
        parser.error(f"unknown model {args.model!r}; available models: {_available()}")
    module_name, _ = MODELS[args.model]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "chainrule":
            raise
        print(f"chainrule: model {args.model!r} needs the package {exc.name!r}; "
              "install it with: pip install 'chainrule[examples]'", file=sys.stderr)
        return 1
    options = {key: getattr(args, key) for key in ("epochs", "lr", "seed")}
    module.run(**{k: v for k, v in options.items() if v is not None}, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
