"""Runnable examples, one module per model, each with a ``run(...) -> dict`` entry point."""
