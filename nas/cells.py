"""NAS-Bench-201 cells as ``Architecture`` values: of grammar nb201 (the cell in the benchmark's network) and
of the hierarchical grammar hnb201 (its NAS-Bench-201 subset)."""

from __future__ import annotations

from typing import Sequence

from nas.architecture import Architecture
from nas.grammar.derive import Node
from nas.grammar.hnb201 import GRAMMAR_NAME as HNB201, nb201_cell_tree
from nas.grammar.nb201 import CELL, DEFAULT_INPUT_SHAPE, GRAMMAR_NAME as NB201, parse_cell_string, validate_ops


def cell_architecture(ops: Sequence[str], input_shape: "str | Sequence[int]" = DEFAULT_INPUT_SHAPE) -> Architecture:
    """The ``Architecture`` of grammar nb201 whose six edges carry ``ops``."""
    ops = validate_ops(ops)
    return Architecture(Node(CELL, tuple(Node(op) for op in ops)), input_shape, NB201)


def from_cell_string(text: str, input_shape: "str | Sequence[int]" = DEFAULT_INPUT_SHAPE) -> Architecture:
    """The nb201 ``Architecture`` of a standard cell string (inverse of ``nas.grammar.nb201.to_cell_string``)."""
    return cell_architecture(parse_cell_string(text), input_shape)


def from_nb201_cell(cell: "str | Sequence[str]",
                    input_shape: "str | Sequence[int]" = DEFAULT_INPUT_SHAPE) -> Architecture:
    """The hnb201 architecture that is NAS-Bench-201's network for ``cell`` (a standard cell string or six
    operation names); ``InvalidArchitectureError`` when every input-output path of the cell has a ``none``
    edge (the grammar requires a live path)."""
    ops = parse_cell_string(cell) if isinstance(cell, str) else validate_ops(cell)
    return Architecture(nb201_cell_tree(ops), input_shape, HNB201)
