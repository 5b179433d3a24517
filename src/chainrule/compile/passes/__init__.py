"""The optimization passes, in pipeline order. Each is a pure ``Graph -> Graph`` function
in its own module; ``jit(fn, passes={"name": False})`` skips one."""
PIPELINE: list = []
