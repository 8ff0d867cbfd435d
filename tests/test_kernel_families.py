"""Every kernel implementation provides every function its family declares
(``tinynet.kernels.FAMILIES``), with the reference's signature.

Read from the sources (no import), so the CuPy and numba modules are checked on a machine that
has neither.
"""
import ast
from pathlib import Path

import pytest

from tinynet import kernels

KERNELS = Path(kernels.__file__).parent


def signatures(module):
    """``{function name: "(arguments)"}`` of the public functions module ``module`` defines or
    imports from a sibling (``from .activation_numpy import relu_forward``)."""
    found = {}
    for node in ast.parse((KERNELS / f"{module}.py").read_text()).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found[node.name] = f"({ast.unparse(node.args)})"
        elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            sibling = signatures(node.module) if (KERNELS / f"{node.module}.py").is_file() else {}
            found.update({alias.asname or alias.name: sibling[alias.name] for alias in node.names
                          if alias.name in sibling})
    return found


def test_every_family_has_every_implementation():
    for family in kernels.FAMILIES:
        for implementation in kernels.IMPLEMENTATIONS:
            assert (KERNELS / f"{family}_{implementation}.py").is_file(), f"{family}_{implementation}.py"


@pytest.mark.parametrize("implementation", ["numba", "cupy"])
@pytest.mark.parametrize("family", sorted(kernels.FAMILIES))
def test_an_implementation_provides_the_family_s_functions_with_the_reference_s_signatures(family, implementation):
    reference, provided = signatures(f"{family}_numpy"), signatures(f"{family}_{implementation}")
    for name in kernels.FAMILIES[family]:
        assert name in provided, f"{family}_{implementation}.py lacks {name}"
        assert provided[name] == reference[name], f"{family}_{implementation}.{name}"


@pytest.mark.parametrize("family", sorted(kernels.FAMILIES))
def test_the_dispatcher_offers_each_declared_function_with_the_reference_s_signature(family):
    dispatcher = signatures("__init__")
    reference = signatures(f"{family}_numpy")
    for name in kernels.FAMILIES[family]:
        assert dispatcher[name] == reference[name], name


def test_the_signature_reader_sees_a_mismatch(tmp_path, monkeypatch):
    (tmp_path / "demo_numpy.py").write_text("def f(x, y=1):\n    pass\n")
    (tmp_path / "demo_cupy.py").write_text("from .demo_numpy import f as g\ndef f(x, y=2):\n    pass\n")
    monkeypatch.setattr(f"{__name__}.KERNELS", tmp_path)
    assert signatures("demo_numpy") == {"f": "(x, y=1)"}
    assert signatures("demo_cupy") == {"g": "(x, y=1)", "f": "(x, y=2)"}


def test_compiling_knows_every_family_the_dispatcher_declares():
    from tinynet.kernels import compiling

    assert set(compiling.FAMILIES) == set(compiling._RUN) == set(kernels.FAMILIES)
