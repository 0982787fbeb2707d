"""The examples in the public API's docstrings run and print what they show (load_flow's needs a trained run and
runs in test_loading.py)."""

import doctest

import pytest
import torch

from lrsflows.flows import Flow, build_image_flow, build_tabular_flow
from lrsflows.splines import spline

PUBLIC = [spline, build_tabular_flow, build_image_flow, Flow]


@pytest.mark.parametrize("public", PUBLIC, ids=lambda public: public.__qualname__)
def test_the_docstring_examples_run(public):
    torch.manual_seed(0)
    tests = [test for test in doctest.DocTestFinder().find(public, public.__qualname__) if test.examples]
    assert tests, f"{public.__qualname__} has no example in its docstring"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted and not failed, f"{failed} of {attempted} examples of {public.__qualname__} failed (see above)"
