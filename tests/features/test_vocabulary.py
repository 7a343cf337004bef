"""The grammar publishes its vocabulary: a toy terminal added to a copy of einspace is counted by GRAF and
costed by the closed-form FLOP count without any change to ``features/``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nas.compile as compile_module
from features.graf import (
    EINSPACE_VOCABULARY,
    GRAF,
    PUBLISHED_FEATURE_NAMES,
    GrammarGRAF,
    graph_features,
    vocabulary_of,
)
from features.zcp.flops import architecture_flops, forward_flops
from nas.architecture import Architecture
from nas.compile import compile_architecture
from nas.grammar import Grammar, Signal, Terminal, get_grammar
from nas.grammar.core import Flow
from nas.grammar.einspace import build_einspace
from nas.graph import to_graph

WIDTH = 24
TOY = "toy_proj"
TEXT = f"routing[im2col(3,1,1), computation<{TOY}>, col2im]"
SHAPE = (3, 8, 8)


class ToyProjection(Terminal):
    """A linear layer to a width no einspace option has, labelled and costed by its own definition."""

    family = "toy"
    layer = "proj"
    flop_rule = "linear"

    def __init__(self, level: str) -> None:
        super().__init__(TOY, level)
        self.labelled("toy_projection", "linear")

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 1:
            return None
        return (Signal(flow[0].shape[:-1] + (WIDTH,), flow[0].grid),)

    def params(self, inp: Flow, out: Flow) -> int:
        return inp[0].shape[-1] * WIDTH + WIDTH

    def flops(self, inp: Flow, out: Flow) -> int:
        return 2 * math.prod(inp[0].shape[:-1]) * inp[0].shape[-1] * WIDTH


def toy_grammar() -> Grammar:
    """A copy of einspace (a fresh build, not the registered grammar) with the toy terminal."""
    base = build_einspace(name="einspace-toy")
    levels = {level: list(ops) for level, ops in base.levels.items()}
    levels["computation_fn"].append(ToyProjection("computation_fn"))
    return Grammar(
        base.name, base.start, levels, base.description,
        graf_labels=base.graf_labels, graf_groups=base.graf_groups, graf_other_group=base.graf_other_group,
    )


def test_the_registered_grammar_is_untouched():
    toy_grammar()
    assert get_grammar("einspace").operation("computation_fn", TOY) is None
    assert "toy_projection" not in EINSPACE_VOCABULARY.labels


def test_graf_counts_the_toy_terminal_under_its_published_label():
    grammar = toy_grammar()
    vocab = vocabulary_of(grammar)
    assert vocab.labels[: len(EINSPACE_VOCABULARY.labels)] == EINSPACE_VOCABULARY.labels
    assert vocab.labels[-1] == "toy_projection" and vocab.groups == EINSPACE_VOCABULARY.groups
    arch = Architecture.from_string(TEXT, SHAPE, grammar)
    transformer = GrammarGRAF(grammar=grammar)
    row = dict(zip(transformer.get_feature_names_out(), transformer.fit_transform([arch])[0]))
    assert row["cnt_toy_projection"] == 1 and row["max_nodes_path_toy_projection"] == 1
    assert row["cnt_im2col3k1s1p"] == 1 and row["cnt_routing_module"] == 1
    # the toy is in the linear group: removing that group cuts the only path
    assert row["path_count"] == 1 and row["path_count_no_linear"] == 0
    # the 385 published columns agree with einspace's GRAF, which does not know the toy
    published = dict(zip(PUBLISHED_FEATURE_NAMES, GRAF(extras=False).fit_transform([arch])[0]))
    assert {k: row[k] for k in published} == published
    assert row["cnt_toy_projection"] == graph_features(to_graph(arch), vocabulary=vocab)[vocab.index["toy_projection"]]


def test_the_flop_count_costs_the_toy_terminal_by_its_published_rule(monkeypatch):
    monkeypatch.setitem(compile_module._BUILDERS, ("toy", "proj"),
                        lambda op, inp, out: nn.Linear(inp[0].shape[-1], WIDTH))
    arch = Architecture.from_string(TEXT, SHAPE, toy_grammar())
    net = compile_architecture(arch, 10, seed=0)
    closed = architecture_flops(net, arch, SHAPE)
    # im2col(3,1,1) on 3×8×8: 64 tokens × 27 features -> 24 (a fused conv), then the head 24 -> 10
    assert closed == 2 * 64 * 27 * WIDTH + 2 * WIDTH * 10
    assert closed == forward_flops(net.eval(), torch.zeros(1, *SHAPE))


def test_a_terminal_without_a_builder_is_refused_by_name():
    arch = Architecture.from_string(TEXT, SHAPE, toy_grammar())
    with pytest.raises(KeyError, match=TOY):
        compile_architecture(arch, 10)
