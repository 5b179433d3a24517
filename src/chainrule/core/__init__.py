"""Core: the Tensor, the primitive table and the single dispatch point ``bind``."""
