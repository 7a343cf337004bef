"""Named presets, each a test away from its source: the grammars ``einspace-v1`` / ``einspace-v2``, the
NeurIPS seeds, the published string notations and the samplers' im2col rule."""

import numpy as np
import pytest
import torch
from torch import nn

from nas.architecture import Architecture
from nas.compile import compile_architecture
from nas.errors import ArchitectureSyntaxError, InvalidArchitectureError
from nas.grammar import get_grammar, grammar_names
from nas.grammar.core import Grammar, Operation
from nas.mutation import mutate
from nas.sampler import Sampler
from nas.seeds import SEED_SETS, get_seed, seed_set

CIFAR = (3, 32, 32)


def total_params(arch: Architecture, classes: int = 10) -> int:
    return arch.num_params + arch.head_params(classes)


# -- the second implementation's seed strings, written in its published notation -----------------------
# Its seed DSL: ``[]`` for every nonterminal, the first implementation's terminal names (``im2col3k1s1p``,
# ``linear64``, ``permute21``), relative widths as ``linear_x(r)``, a bare ``identity`` as the residual
# shortcut, and left-nested ``sequential`` chains.  These builders follow its seed definitions.


def _seq(a: str, b: str) -> str:
    return f"sequential[{a}, {b}]"


def _lseq(*parts: str) -> str:
    out = parts[0]
    for p in parts[1:]:
        out = _seq(out, p)
    return out


def _comp(fn: str) -> str:
    return f"computation[{fn}]"


def _conv(width: int, k: int, s: int, p: int) -> str:
    return f"routing[im2col{k}k{s}s{p}p, {_comp(f'linear{width}')}, col2im]"


def _v2_block(width: int, strided: bool) -> str:
    first = _lseq(_conv(width, 3, 2 if strided else 1, 1), _comp("norm"), _comp("relu"))
    main = _seq(first, _seq(_conv(width, 3, 1, 1), _comp("norm")))
    shortcut = _seq(_conv(width, 1, 2, 0), _comp("norm")) if strided else "identity"
    return _seq(f"branching(2)[clone(2), {main}, {shortcut}, add(2)]", _comp("relu"))


def v2_resnet18_string() -> str:
    stem = _seq(_lseq(_conv(64, 3, 1, 1), _comp("norm"), _comp("relu")), _conv(64, 3, 2, 1))
    stages = [_seq(_v2_block(w, w != 64), _v2_block(w, False)) for w in (64, 128, 256, 512)]
    return _seq(_seq(stem, _seq(stages[0], stages[1])), _seq(stages[2], stages[3]))


def v2_mlp_mixer_string() -> str:
    token_mix = _seq(
        _seq(f"routing[permute21, {_comp('linear_x(4)')}, identity]", _comp("relu")),
        f"routing[identity, {_comp('linear_x(0.25)')}, permute21]",
    )
    channel_mix = _seq(_seq(_comp("linear256"), _comp("relu")), _comp("linear512"))
    layer = f"branching(2)[clone(2), {_seq(_comp('norm'), _seq(token_mix, channel_mix))}, {_comp('identity')}, add(2)]"
    pairs = [_seq(layer, layer)] * 4
    body = _seq(_seq(pairs[0], pairs[1]), _seq(pairs[2], pairs[3]))
    embed = _seq(f"routing[im2col4k4s0p, {_comp('linear512')}, identity]", _comp("pos_enc"))
    return _seq(embed, body)


def test_v2_resnet18_string_parses_and_has_v2s_parameter_count():
    text = v2_resnet18_string()
    assert ", identity, add(2)]" in text  # the bare identity in a module slot that used to be refused
    arch = Architecture.from_string(text, CIFAR, "einspace-v2")
    assert total_params(arch) == 11_215_690
    # canonical output stays the project's notation; the same network as the project's seed
    assert "computation<identity>" in arch.to_string() and "im2col(3,1,1)" in arch.to_string()
    seed = get_seed("resnet18", CIFAR, "einspace-v2")
    assert arch.num_params == seed.num_params and arch.num_terminals == seed.num_terminals
    assert Architecture.from_string(arch.to_string(), CIFAR, "einspace-v2") == arch


def test_v2_mlp_mixer_string_parses_and_has_v2s_parameter_count_with_batch_norm():
    text = v2_mlp_mixer_string()
    assert "linear_x(0.25)" in text
    v2 = Architecture.from_string(text, CIFAR, "einspace-v2")
    assert total_params(v2) == 2_427_530
    # the same string is another network in today's einspace: LayerNorm(512) instead of BatchNorm1d(64)
    today = Architecture.from_string(text, CIFAR, "einspace")
    assert total_params(today) - total_params(v2) == 8 * (2 * 512 - 2 * 64) == 7_168
    assert today.to_string() == v2.to_string() and today.hash != v2.hash and today != v2
    assert total_params(get_seed("mlp_mixer", CIFAR, "einspace-v2")) == 2_427_530
    assert total_params(get_seed("vit", CIFAR, "einspace")) - total_params(get_seed("vit", CIFAR, "einspace-v2")) == 7_168


def test_batch_norm_preset_compiles_to_batchnorm1d_over_tokens():
    arch = Architecture.from_string(v2_mlp_mixer_string(), CIFAR, "einspace-v2")
    net = compile_architecture(arch, 10, seed=0)
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.LayerNorm))]
    assert len(norms) == 8 and all(type(m) is nn.BatchNorm1d and m.num_features == 64 for m in norms)
    assert sum(p.numel() for p in net.parameters()) == 2_427_530
    net.train()
    with torch.no_grad():
        assert net(torch.randn(2, *CIFAR)).shape == (2, 10)
    # im-mode norm is BatchNorm2d in every preset
    conv_bn = "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], computation<norm>)"
    for grammar in ("einspace", "einspace-v2"):
        net = compile_architecture(Architecture.from_string(conv_bn, CIFAR, grammar), 10, seed=0)
        assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_the_published_notations_parse_to_the_canonical_ops():
    arch = Architecture.from_string("routing[im2col3k2s1p, computation[linear64], col2im]", CIFAR, "einspace")
    assert arch.to_string() == "routing[im2col(3,2,1), computation<linear(64)>, col2im]"
    cases = {
        "routing[permute21, linear(x4), permute21]": "routing[perm(0,2,1), computation<linear(x4)>, perm(0,2,1)]",
        "routing[identity, linear(x0.25), identity]": "routing[identity, computation<linear(/4)>, identity]",
        "routing[identity, linear_4th, identity]": "routing[identity, computation<linear(/4)>, identity]",
        "branching(2)[clone_tensor2, identity, pos_enc, cat_tensors2d2t]":
            "branching(2){clone(2), computation<identity>, computation<pos_enc>, cat(2,2)}",
        "branching(2)[clone(2), linear16, routing[identity, linear16, permute21], dot_product(scaled=True)]":
            "branching(2){clone(2), computation<linear(16)>, routing[identity, computation<linear(16)>, perm(0,2,1)], "
            "dot_product(scaled)}",
        "branching(4)[group_dim4s2d, learnable_positional_encoding, add_tensors]":
            "branching(4){group(4,2), computation<pos_enc>, add(4)}",
    }
    for text, canonical in cases.items():
        arch = Architecture.from_string(text, (64, 32), "einspace")
        assert arch.to_string() == canonical, text
    # a bare layer is only accepted where a module is expected, and unknown names still fail clearly
    with pytest.raises(ArchitectureSyntaxError, match="unknown operation"):
        Architecture.from_string("routing[linear64, identity, identity]", (64, 32), "einspace")
    with pytest.raises(ArchitectureSyntaxError, match="unknown operation"):
        Architecture.from_string("routing[identity, linear(x3), identity]", (64, 32), "einspace")


def test_an_alias_that_names_another_operation_is_refused():
    a, b = Operation("a", "x"), Operation("b", "x")
    b.aliases = ("a",)
    with pytest.raises(ValueError, match="alias 'a' of 'b'"):
        Grammar("g", "x", {"x": [a, b]})


def test_vit_v1_is_the_neurips_transformer():
    arch = get_seed("vit_v1", CIFAR)
    assert total_params(arch) == 4_270_218
    text = arch.to_string()
    assert "leakyrelu" in text and "relu>" not in text.replace("leakyrelu>", "")
    assert "linear(2048)" not in text
    # post-norm: every norm follows a residual add, none opens a residual branch
    assert "add(2)}, computation<norm>" in text and "{clone(2), sequential(computation<norm>" not in text
    assert total_params(get_seed("vit", CIFAR)) == 10_567_818
    assert Architecture.from_string(text, CIFAR, "einspace-v1") == get_seed("vit_v1", CIFAR, "einspace-v1")


def test_mixed_seed_sets():
    assert SEED_SETS["mixed-v1"] == ("resnet18_v1", "wrn16_4_v1", "vit_v1", "mlp_mixer_v1")
    assert seed_set("mixed_v1") == seed_set("Mixed-V1") == SEED_SETS["mixed-v1"] and seed_set("vit") is None
    for name in SEED_SETS["mixed-v1"]:
        arch = get_seed(name, CIFAR, "einspace-v1")
        assert arch.grammar.name == "einspace-v1"
        assert not any(info.op.name == "relu" for info in arch.terminals())
    v1, v2 = get_seed("resnet18_v1", CIFAR), get_seed("resnet18", CIFAR)
    assert v1.num_params == v2.num_params and v1 != v2
    with pytest.raises(InvalidArchitectureError, match="'relu' is not an option"):
        get_seed("resnet18", CIFAR, "einspace-v1")


def test_presets_are_registered():
    assert {"einspace", "einspace-v1", "einspace-v2"} <= set(grammar_names())
    assert get_grammar("einspace").budget().max_depth == 48  # today's preset unchanged
    assert get_grammar("einspace-v1").budget().max_depth == 101  # module depth ≤ 100, plus its layer


def test_einspace_v1_has_the_first_implementations_option_set():
    g = get_grammar("einspace-v1")

    def sampled(level):
        return [o for o in g.options(level) if o.weight > 0]

    assert [o.name for o in sampled("computation_fn")][-4:] == ["norm", "leakyrelu", "softmax", "pos_enc"]
    assert len(sampled("computation_fn")) == 13 and g.operation("computation_fn", "relu") is None
    assert len(sampled("prerouting_fn")) == 14 and len(sampled("postrouting_fn")) == 8
    labels = lambda prefix: {o.graf_label for lv in g.levels if lv.startswith(prefix) for o in sampled(lv)}  # noqa: E731
    assert len(labels("branching_fn")) == 12 and len(labels("aggregation_fn")) == 12
    # four module types: branching keeps (1-p)/3 in all, split over the factors
    weights = {}
    for o in sampled("module"):
        weights[o.graf_label] = weights.get(o.graf_label, 0) + o.weight
    assert weights == pytest.approx({"sequential_module": 0.68 / 3, "branching_module": 0.68 / 3,
                                     "routing_module": 0.68 / 3, "computation_module": 0.32})


def test_einspace_v1_samples_only_v1_options():
    g = get_grammar("einspace-v1")
    allowed = {(lv, o.name) for lv, ops in g.levels.items() for o in ops if o.weight > 0}
    sampler = Sampler("einspace-v1", (3, 16, 16))
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for arch in sampler.sample_many(300, rng):
        for info in arch.nodes:
            assert (info.level, info.op.name) in allowed
            seen.add(info.op.name)
        child = mutate(arch, rng, sampler.budget)
        assert all((i.level, i.op.name) in allowed for i in child.nodes)
    assert "leakyrelu" in seen and "relu" not in seen and not {"linear(x4)", "linear(/4)"} & seen


def test_im2col_is_sampled_only_where_the_map_is_at_least_the_kernel():
    # both published samplers choose im2col(k, s, p) only for H, W ≥ k
    rng = np.random.default_rng(1)
    sampler = Sampler("einspace", (4, 2, 5))
    kernels = set()
    for arch in sampler.sample_many(300, rng):
        for info in arch.terminals():
            if info.op.name.startswith("im2col"):
                _, h, w = info.inputs[0].shape
                assert h >= info.op.kernel and w >= info.op.kernel, (arch.to_string(), info.path)
                kernels.add(info.op.kernel)
    assert kernels  # im2col is sampled, with every kernel somewhere (other ops can widen the map)
    # a given tree may still pad a smaller map (H + 2p ≥ k), as the references' replay does: the ResNet-18
    # seed convolves its 2×2 last stage with 3×3 kernels
    arch = Architecture.from_string("routing[im2col(3,1,1), computation<linear(16)>, col2im]", (4, 2, 5))
    assert arch.output_shape == (16, 2, 5)
    last = [i for i in get_seed("resnet18", CIFAR).terminals() if i.op.name.startswith("im2col")][-1]
    assert last.op.name == "im2col(3,1,1)" and last.inputs[0].shape[1:] == (2, 2)
