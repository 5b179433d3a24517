"""Command-line entry point: ``python -m chainrule train MODEL`` (or ``chainrule train``).

Each model is a module exposing ``run(epochs=..., lr=..., seed=..., verbose=..., ...)``;
register new ones in ``MODELS``. Options left out fall back to the model's defaults (or,
with ``--resume``, to the values the run was started with). Options a model's ``run``
does not take (``--out``, ``--resume`` for ``logreg``) are refused with a clear error.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from typing import Sequence

# model name -> (module with a ``run`` function, one-line description)
MODELS: dict[str, tuple[str, str]] = {
    "digits-cnn": ("chainrule.examples.digits_cnn",
                   "small CNN (conv-bn-relu-pool x2, linear) on the 8x8 digits, >= 98% "
                   "test accuracy"),
    "digits-mlp": ("chainrule.examples.digits_mlp",
                   "MLP (2 hidden layers, dropout) on the flattened 8x8 digits"),
    "char-transformer": ("chainrule.examples.char_transformer",
                         "causal Transformer language model on Python's pydoc text, "
                         "then a sample"),
    "recommender": ("chainrule.examples.recommender",
                    "matrix factorization (user/item embeddings + biases) on synthetic "
                    "ratings"),
    "hypergrad": ("chainrule.examples.hypergrad",
                  "learn the learning rate by differentiating through unrolled SGD steps"),
    "logreg": ("chainrule.examples.logreg",
               "logistic regression on the breast-cancer dataset, compared with scikit-learn"),
}

EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C


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
    return ", ".join(MODELS)


def _model_table() -> str:
    width = max(map(len, MODELS))
    return "\n".join(f"  {name:<{width}}  {desc}" for name, (_, desc) in MODELS.items())


def build_parser() -> argparse.ArgumentParser:
    """The ``chainrule`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="chainrule", description="Run chainrule's example models.",
        epilog=f"models (python -m chainrule train MODEL):\n{_model_table()}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train", help="train a model and report its metrics",
        description="Train one of the example models on bundled data and report its "
                    "metrics. Models that write a run folder (all but logreg) save the "
                    "weights, a checkpoint, metrics.csv, metrics.png and the autograd graph "
                    "there; Ctrl-C saves a checkpoint that --resume continues exactly.",
        epilog=f"models:\n{_model_table()}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("model", metavar="MODEL", help=f"one of: {_available()}")
    train.add_argument("--epochs", type=_positive_int, help="number of training epochs")
    train.add_argument("--lr", type=_positive_float, help="learning rate")
    train.add_argument("--seed", type=int, help="seed for the data split and initialization")
    train.add_argument("--out", metavar="DIR",
                       help="run folder (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in the run folder from its last checkpoint")
    train.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                       help="no progress bar (the per-epoch lines still print)")
    train.add_argument("--quiet", action="store_true",
                       help="print only the final result line")
    train.set_defaults(subparser=train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    train = args.subparser
    if args.model not in MODELS:
        train.error(f"unknown model {args.model!r}; choose one of: {_available()}")
    module_name, _ = MODELS[args.model]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "chainrule":
            raise
        print(f"chainrule: model {args.model!r} needs the package {exc.name!r}; "
              "install it with: pip install 'chainrule[examples]'", file=sys.stderr)
        return 1
    accepted = inspect.signature(module.run).parameters
    options = {"epochs": args.epochs, "lr": args.lr, "seed": args.seed, "out": args.out,
               "resume": args.resume or None}
    refused = [f"--{k}" for k, v in options.items() if v is not None and k not in accepted]
    if refused:
        train.error(f"model {args.model!r} does not take {', '.join(refused)}")
    kwargs = {k: v for k, v in options.items() if v is not None}
    if args.progress is not None and "progress" in accepted:
        kwargs["progress"] = args.progress
    from .examples.runner import RunError
    try:
        module.run(**kwargs, verbose=not args.quiet)
    except RunError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
