"""The optimization passes, in pipeline order. Each is a pure ``Graph -> Graph`` function
in its own module; ``jit(fn, passes={"name": False})`` skips one (every entry of that
name).

fold first turns constant-only work into (small) constants, so that cse sees equal
constants and simplify sees the ones and zeros; safe runs after simplify has put the
constants next to the ops; cse runs again on the duplicates the rewrites exposed, and
prune drops everything that no longer leads to an output. fuse then turns maximal groups
of elementwise equations into one kernel each, order predicts which values eager holds
F-ordered (so the compiled ones are too), and plan assigns buffers for reuse.
"""
from .cse import cse
from .fold import fold
from .fuse import fuse
from .order import order
from .plan import plan
from .prune import prune
from .safe import safe
from .simplify import simplify

PIPELINE: list = [
    ("fold", fold),
    ("cse", cse),
    ("simplify", simplify),
    ("safe", safe),
    ("cse", cse),
    ("prune", prune),
    ("fuse", fuse),
    ("order", order),
    ("plan", plan),
]
