"""The tracing compiler: ``jit``, ``make_graph`` and the graph IR."""
from .ir import Eqn, Graph, Var
from .jit import JittedFunction, Lowered, jit, make_graph, optimize

__all__ = ["jit", "make_graph", "optimize", "JittedFunction", "Lowered", "Graph", "Eqn", "Var"]
