"""The README's code runs as written."""
import math
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python examples"
    namespace = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    th = math.tanh(namespace["t"].item())
    third = 2 * (1 - th ** 2) * (3 * th ** 2 - 1)  # d3/dt3 tanh, computed in the tour
    assert abs(namespace["g3"].item() - third) < 1e-12
