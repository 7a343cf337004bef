"""Fuzzed text only ever raises ArchitectureSyntaxError or InvalidArchitectureError."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.architecture import Architecture
from nas.errors import ArchitectureSyntaxError, InvalidArchitectureError
from nas.sampler import Sampler

EXPECTED = (ArchitectureSyntaxError, InvalidArchitectureError)
ALPHABET = "()[]{}<>,' :0123456789xo/_abcdefgilmnopqrstuvw\n"
TOKENS = [
    "sequential", "routing", "computation", "branching(2)", "branching(4)", "clone(2)", "group(4,2)", "add(2)",
    "cat(2,1)", "dot_product", "im2col(3,1,1)", "col2im", "perm(0,2,1)", "linear(64)", "norm", "relu", "identity",
    "(", ")", "[", "]", "{", "}", "<", ">", ", ", "{'out_feature_shape': [4, 4]}",
]
SAMPLES = [a.to_string() for a in Sampler(input_shape=(3, 16, 16)).sample_many(20, np.random.default_rng(0))]


def must_fail_cleanly(text: str, shape=(3, 16, 16)) -> None:
    try:
        Architecture.from_string(text, shape)
    except EXPECTED:
        pass


@settings(max_examples=300)
@given(st.text(alphabet=ALPHABET, max_size=80))
def test_random_characters(text):
    must_fail_cleanly(text)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_token_sequences(tokens):
    must_fail_cleanly("".join(tokens))


@settings(max_examples=300)
@given(st.sampled_from(SAMPLES), st.data())
def test_edited_valid_strings(text, data):
    """Delete, duplicate or replace a slice of a valid string: mostly syntax errors, some shape errors."""
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 12)))
    edit = data.draw(st.sampled_from(["delete", "duplicate", "replace"]))
    if edit == "delete":
        text = text[:i] + text[j:]
    elif edit == "duplicate":
        text = text[:j] + text[i:j] + text[j:]
    else:
        text = text[:i] + data.draw(st.sampled_from(TOKENS)) + text[j:]
    must_fail_cleanly(text)


@pytest.mark.parametrize("shape", [(3, 16, 16), (64, 32), (1, 1, 1)])
@settings(max_examples=100)
@given(st.sampled_from(SAMPLES))
def test_valid_strings_on_other_shapes(shape, text):
    """A string valid for one input may break shape rules on another: that is InvalidArchitectureError."""
    must_fail_cleanly(text, shape)


def test_deep_nesting_is_refused_not_a_recursion_error():
    text = "sequential(" * 400 + "computation<relu>, computation<relu>" + ")" * 400
    with pytest.raises(ArchitectureSyntaxError, match="nested deeper than"):
        Architecture.from_string(text, (3, 8, 8))
    deep = {"op": "computation", "children": [{"op": "relu"}]}
    for _ in range(5000):
        deep = {"op": "sequential", "children": [deep, {"op": "computation", "children": [{"op": "relu"}]}]}
    with pytest.raises(InvalidArchitectureError):
        Architecture.from_json({"input_shape": [3, 8, 8], "tree": deep})
