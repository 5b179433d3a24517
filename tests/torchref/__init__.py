"""PyTorch reference cases, split by kind of op; see tests/test_torch_reference.py."""
