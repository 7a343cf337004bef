"""The NAS-Bench-201 cell grammar: structure, cell strings, canonicalisation, and the shared machinery
(sampling, mutation, crossover, strings, JSON) working unchanged on it."""

import csv
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from nas.architecture import Architecture
from nas.cells import cell_architecture, from_cell_string
from nas.errors import ArchitectureSyntaxError, InvalidArchitectureError, SamplingError
from nas.grammar import get_grammar, grammar_names
from nas.grammar.nb201 import (
    EDGE_LEVELS,
    OPS,
    canonical_cell,
    cell_ops,
    iter_cells,
    parse_cell_string,
    to_cell_string,
)
from nas.sampler import Sampler
from nas.mutation import crossover, mutate

SHAPE = (3, 32, 32)
CELL = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
CELL_OPS = ("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1")


@pytest.fixture(scope="module")
def table_cells() -> list[str]:
    from data.nb201 import ACCURACY_FILE, find_data_dir, open_table

    try:
        folder = find_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 data not available: {exc}")
    with open_table(folder, ACCURACY_FILE) as fh:
        return [row["net_str"] for row in csv.DictReader(fh)]


def test_grammar_is_registered_with_six_uniform_edge_levels():
    g = get_grammar("nb201")
    assert "nb201" in grammar_names() and g.name == "nb201"
    (cell,) = g.options(g.start)
    assert cell.name == "cell" and cell.kind == "dag" and cell.brackets == "()"
    assert cell.edges == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert cell.children == EDGE_LEVELS == ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
    for level in EDGE_LEVELS:
        options = g.options(level)
        assert tuple(o.name for o in options) == OPS
        assert all(o.is_terminal and o.weight == 1.0 for o in options)


def test_cell_string_and_compact_string():
    arch = from_cell_string(CELL)
    assert cell_ops(arch) == CELL_OPS
    assert arch.to_string() == "cell(" + ", ".join(CELL_OPS) + ")"
    assert to_cell_string(arch) == to_cell_string(CELL_OPS) == CELL
    assert arch.num_nodes == 7 and arch.output_shape == (64, 8, 8)  # the network around the cell
    assert arch.node_at((0,)).inputs[0].shape == (16, 32, 32)  # edges see the first stage
    assert cell_architecture(CELL_OPS) == arch


def test_every_table_cell_round_trips(table_cells):
    assert len(table_cells) == 9445
    for s in table_cells:
        arch = from_cell_string(s)
        assert to_cell_string(arch) == s
        again = Architecture.from_string(arch.to_string(), SHAPE, "nb201")
        assert again == arch and again.hash == arch.hash


def test_canonicalisation_gives_the_tables_classes(table_cells):
    table = [parse_cell_string(s) for s in table_cells]
    assert all(canonical_cell(t) == t for t in table)  # each table cell represents its class
    classes = Counter(canonical_cell(c) for c in iter_cells())
    assert sum(classes.values()) == 15625
    assert set(classes) == set(table)  # exactly one table cell per class


def test_canonicalisation_counts_without_data():
    cells = list(iter_cells())
    classes = Counter(canonical_cell(c) for c in cells)
    assert len(cells) == 15625 and len(classes) == 9445
    assert classes[("none",) * 6] == 341  # no live input->output path
    assert all(canonical_cell(c) == c for c in classes)  # idempotent


def test_dead_operations_become_none():
    # node 1 has no input (edge 1<-0 is none), so edges 2<-1 and 3<-1 are dead
    ops = ("none", "skip_connect", "avg_pool_3x3", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1")
    assert canonical_cell(ops) == ("none", "skip_connect", "none", "nor_conv_3x3", "none", "nor_conv_1x1")
    # node 2 reaches nothing (edge 3<-2 is none), so edges into node 2 are dead
    ops = ("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "skip_connect", "none")
    assert canonical_cell(ops) == ("nor_conv_3x3", "none", "none", "nor_conv_1x1", "skip_connect", "none")
    assert canonical_cell(from_cell_string(CELL)) == CELL_OPS  # nothing dead


def test_sampling_is_deterministic_and_valid():
    sampler = Sampler("nb201", SHAPE)
    assert sampler.sample(7) == sampler.sample(7)
    a = list(sampler.sample_many(50, np.random.default_rng(3)))
    b = list(sampler.sample_many(50, np.random.default_rng(3)))
    assert a == b
    assert len({x.to_string() for x in a}) > 40
    for arch in a:
        assert len(cell_ops(arch)) == 6
        assert Architecture.from_json(arch.to_json()) == arch
        assert from_cell_string(to_cell_string(arch)) == arch


def test_mutation_always_gives_a_valid_different_cell():
    rng = np.random.default_rng(0)
    arch = from_cell_string(CELL)
    for _ in range(200):
        child = mutate(arch, rng)
        assert child != arch and cell_ops(child) != cell_ops(arch)
        assert Architecture.from_string(child.to_string(), SHAPE, "nb201") == child
        arch = child
    assert mutate(arch, 5) == mutate(arch, 5)


def test_crossover_mixes_the_parents_operations():
    rng = np.random.default_rng(1)
    sampler = Sampler("nb201", SHAPE)
    for _ in range(30):
        a, b = sampler.sample(rng), sampler.sample(rng)
        if a == b:
            continue
        child = crossover(a, b, rng)
        assert child != a and child.grammar.name == "nb201"
        assert set(cell_ops(child)) <= set(cell_ops(a)) | set(cell_ops(b))
        assert Architecture.from_json(child.to_json()) == child


def test_operations_are_invalid_on_sequences():
    with pytest.raises(InvalidArchitectureError, match="needs an image input C×H×W.*not valid for input 64×32"):
        Architecture.from_string("cell(none, none, none, none, none, none)", (64, 32), "nb201")
    with pytest.raises(SamplingError, match="grammar 'nb201' needs an image input C×H×W"):
        Sampler("nb201", (64, 32), max_restarts=2)
    with pytest.raises(SamplingError, match="divisible by 4; not valid for input 3×30×30"):
        Sampler("nb201", (3, 30, 30))


@pytest.mark.parametrize(
    "text, message, position",
    [
        ("", "empty text", 0),
        ("nor_conv_3x3~0|+|", "expected '\\|' at the start", 0),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2", "expected '\\|' at the end", 45),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv'", 1),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "source '2', expected ~1", 17),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "source '1', expected ~0", 1),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 has 1 input edge\\(s\\) before '\\+'", 17),
        ("|none~0|+|none~0|none~1|none~2|+|none~0|none~1|none~2|", "node 2 takes 2 input", 24),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|", "incomplete cell: 5 of 6 edges", 40),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "too many nodes", 47),
        ("|none~0||none~0|none~1|+|none~0|none~1|none~2|", "empty field", 7),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "expected an edge 'op~source'", 1),
    ],
)
def test_malformed_cell_strings_name_position_and_token(text, message, position):
    with pytest.raises(ArchitectureSyntaxError, match=message) as info:
        parse_cell_string(text)
    assert info.value.position == position


def test_bad_operation_lists_and_foreign_architectures():
    with pytest.raises(ValueError, match="6 edge operations, got 5"):
        to_cell_string(CELL_OPS[:5])
    with pytest.raises(ValueError, match="operation 2 \\(edge 2←1\\): unknown operation 'conv'"):
        canonical_cell(("none", "none", "conv", "none", "none", "none"))
    with pytest.raises(TypeError, match="from_cell_string"):
        to_cell_string(CELL)
    with pytest.raises(ValueError, match="not an nb201 cell"):
        cell_ops(Architecture.from_string("sequential(computation<relu>, computation<relu>)", SHAPE))
    with pytest.raises(ArchitectureSyntaxError, match="unknown operation for 'edge_2_0'"):
        Architecture.from_string("cell(none, conv, none, none, none, none)", SHAPE, "nb201")


def test_nb201_module_does_not_import_torch():
    code = "import sys, nas.grammar.nb201; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
