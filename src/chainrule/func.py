"""``chainrule.func``: composable function transforms (``torch.func`` / JAX style).

    import chainrule as cr
    d2 = cr.func.grad(cr.func.grad(lambda x: cr.sin(x).sum()))
    cr.func.jvp(f, (x,), (v,))            # forward mode: (f(x), J v)
    cr.func.hessian(loss)(params)         # params may be a dict of tensors
"""
from .autodiff.transforms import (grad, hessian, hvp, jacfwd, jacrev, jvp, value_and_grad,
                                  vjp)
from .tree import tree_flatten, tree_leaves, tree_map, tree_structure, tree_unflatten

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "hvp",
           "tree_flatten", "tree_unflatten", "tree_map", "tree_leaves", "tree_structure"]
