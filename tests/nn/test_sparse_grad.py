"""Row-sparse embedding gradients and the optimizers that take them, against the dense
path and PyTorch's sparse embeddings."""
import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn


def pair(seed=0, num=12, dim=3):
    cr.manual_seed(seed)
    dense = nn.Embedding(num, dim, dtype=cr.float64)
    sparse = nn.Embedding(num, dim, sparse=True, dtype=cr.float64)
    sparse.load_state_dict(dense.state_dict())
    return dense, sparse


BATCHES = [[1, 4, 4, 9], [4, 0], [11, 1, 1]]


def train(emb, opt, batches=BATCHES):
    for b in batches:
        opt.zero_grad()
        (emb(cr.tensor(b)).tanh() ** 2).sum().backward()
        opt.step()


@pytest.mark.parametrize("make", [lambda p: cr.optim.SGD(p, lr=0.1),
                                  lambda p: cr.optim.Adagrad(p, lr=0.1, lr_decay=0.01)])
def test_sparse_updates_equal_dense_for_row_local_rules(make):
    dense, sparse = pair()
    train(dense, make(dense.parameters()))
    train(sparse, make(sparse.parameters()))
    np.testing.assert_allclose(sparse.weight.data, dense.weight.data, rtol=1e-12)


def test_sparse_adam_is_lazy_adam_and_matches_torch():
    torch = pytest.importorskip("torch")
    _, sparse = pair()
    t_emb = torch.nn.Embedding(12, 3, sparse=True, dtype=torch.float64)
    with torch.no_grad():
        t_emb.weight.copy_(torch.tensor(sparse.weight.data))
    t_opt = torch.optim.SparseAdam(t_emb.parameters(), lr=0.05)
    train(sparse, cr.optim.SparseAdam(sparse.parameters(), lr=0.05))
    for b in BATCHES:
        t_opt.zero_grad()
        (t_emb(torch.tensor(b)).tanh() ** 2).sum().backward()
        t_opt.step()
    np.testing.assert_allclose(sparse.weight.data, t_emb.weight.detach().numpy(), rtol=1e-10)
    untouched = [r for r in range(12) if all(r not in b for b in BATCHES)]
    np.testing.assert_array_equal(sparse.weight.data[untouched],
                                  pair()[1].weight.data[untouched])


def test_clip_grad_norm_sees_sparse_gradients():
    dense, sparse = pair()
    for m in (dense, sparse):
        (m(cr.tensor([2, 2, 5])) * 10).sum().backward()
    nd = nn.utils.clip_grad_norm_(dense.parameters(), 1.0)
    ns = nn.utils.clip_grad_norm_(sparse.parameters(), 1.0)
    assert float(nd) == pytest.approx(float(ns))
    np.testing.assert_allclose(sparse.weight.grad.to_dense().data, dense.weight.grad.data)


def test_optimizers_without_a_row_rule_say_so():
    _, sparse = pair()
    (sparse(cr.tensor([1])).sum()).backward()
    with pytest.raises(RuntimeError, match="Adam: .*row-sparse gradient .*SparseAdam"):
        cr.optim.Adam(sparse.parameters()).step()
    with pytest.raises(RuntimeError, match="without momentum"):
        cr.optim.SGD(sparse.parameters(), lr=0.1, momentum=0.9).step()
    dense, _ = pair()
    dense(cr.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="SparseAdam: .* dense gradient"):
        cr.optim.SparseAdam(dense.parameters()).step()


def test_sparse_gradient_through_autograd_grad_and_second_order():
    _, sparse = pair()
    (g,) = cr.autograd.grad((sparse(cr.tensor([3, 3])) ** 2).sum(), sparse.weight,
                            create_graph=True)
    assert g.is_sparse
    dense = g.to_dense()
    np.testing.assert_allclose(dense.data[3], 4 * sparse.weight.data[3])
    (h,) = cr.autograd.grad(dense.sum(), sparse.weight)  # d/dw sum(4 w[3]) = 4 on row 3
    np.testing.assert_allclose(h.to_dense().data[3], 4.0)
