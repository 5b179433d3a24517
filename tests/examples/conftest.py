"""The example runs multiply small matrices. On a shared 2-core machine OpenBLAS's
spinning worker threads made these tests 2-3x slower than one thread does, so they run
with one BLAS thread (results are compared only among runs of the same process)."""
import pytest


@pytest.fixture(autouse=True, scope="package")
def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it, keep the default
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
