"""Automatic differentiation: the reverse-mode engine (forward mode and transforms build on it)."""
