"""The ``published`` feature set: 385 GRAF columns + the 7 published proxies, fisher as published."""

from __future__ import annotations

import copy
import hashlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from data.tasks import Split, Task
from features.graf import EINSPACE_VOCABULARY
from features.pipeline import cached, make_featuriser, parse_feature_sets, uses_proxies
from features.cache import MemoryStore
from features.zcp import PUBLISHED, PublishedProxies, compute_proxies
from nas.architecture import Architecture
from nas.compile import compile_architecture

CONV = "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], computation<relu>)"
#: sha256 of the 392 column names joined by newlines: the published layout, which must never drift.
NAMES_SHA256 = "a061b924a9df7816f391cb747abced0e122374f319a2c2e42baf611dc4d1c862"


def _task(n: int = 40) -> Task:
    rng = np.random.default_rng(0)

    def split(m: int) -> Split:
        return Split(rng.normal(0.0, 1.0, (m, 3, 8, 8)).astype(np.float32), rng.integers(0, 4, m).astype(np.int64))

    return Task(name="tiny8", input_shape=(3, 8, 8), num_classes=4, train=split(n), valid=split(8), test=split(8))


def test_published_set_has_exactly_392_stable_columns():
    task = _task()
    f = make_featuriser("published", task)
    names = [str(n) for n in f.get_feature_names_out()]
    assert len(names) == 392 and len(set(names)) == 392
    assert names[:385] == list(EINSPACE_VOCABULARY.feature_names(extras=False))
    assert names[385:] == list(PUBLISHED) == ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow"]
    assert names[0] == "cnt_sequential_module" and names[384] == "in_deg_learnable_positional_encoding"
    assert hashlib.sha256("\n".join(names).encode()).hexdigest() == NAMES_SHA256
    arch = Architecture.from_string(CONV, task.input_shape)
    X = cached(f, MemoryStore(), task.name).fit([arch]).transform([arch, arch])
    assert X.shape == (2, 392) and np.isfinite(X[:, 385:]).all()
    assert X[0, names.index("cnt_linear16")] == 1 and np.array_equal(X[0], X[1])
    assert PublishedProxies(task).get_params()["batch_size"] == 32


def test_feature_spec_parsing_of_published():
    assert parse_feature_sets("published") == ["published"]
    assert uses_proxies("published") and uses_proxies("graf,zcp") and not uses_proxies("graf")
    with pytest.raises(ValueError, match="whole encoding"):
        parse_feature_sets("graf,published")
    with pytest.raises(ValueError, match="einspace encoding"):
        make_featuriser("published", _task(), grammar="nb201")
    with pytest.raises(ValueError, match="needs a task"):
        make_featuriser("published", None, grammar="einspace")


def test_published_fisher_golden_value_by_hand():
    # One Linear(3 -> 2), W = 0, b = (0, ln 3): logits (0, ln 3) for every sample, softmax (1/4, 3/4).  Labels
    # (0, 0) and a batch of 2: ∂L/∂a = (softmax - onehot) / 2 = (-3/8, 3/8).  a ⊙ ∂L/∂a = (0, 3 ln 3 / 8) for
    # each sample, so Σ_k ½ mean_n (·)² = ½ (3 ln 3 / 8)² = 9 (ln 3)² / 128; published weights it by the
    # fan-in 3: 27 (ln 3)² / 128 ≈ 0.254591.
    net = nn.Linear(3, 2)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    x, y = torch.randn(2, 3), torch.tensor([0, 0])
    feature = compute_proxies(net, x, y, 2, ("fisher",))["fisher"]
    published = compute_proxies(net, x, y, 2, ("fisher",), fisher="published")["fisher"]
    # float32 forward and backward: agreement to float32 rounding on any BLAS
    assert feature == pytest.approx(9 * math.log(3) ** 2 / 128, rel=1e-6)
    assert published == pytest.approx(27 * math.log(3) ** 2 / 128, rel=1e-6)
    assert published == pytest.approx(0.2545908, rel=1e-6)
    with pytest.raises(ValueError, match="fisher must be one of"):
        compute_proxies(net, x, y, 2, ("fisher",), fisher="foresight")


def _reference_fisher(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The zero-cost-nas fisher, written out independently: per layer, axis 1 is the channel, the per-channel
    value is broadcast over weight.shape[1:] (a tensor filled per channel, stacked) and everything summed."""
    net = copy.deepcopy(net).train()
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    acts: dict[nn.Module, torch.Tensor] = {}

    def keep(module, _inputs, output):
        output.retain_grad()
        acts[module] = output

    hooks = [m.register_forward_hook(keep) for m in layers]
    nn.functional.cross_entropy(net(x), y).backward()
    for h in hooks:
        h.remove()
    total = 0.0
    for m in layers:
        a, g = acts[m].detach().double(), acts[m].grad.double()
        g_nk = (a * g).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * g
        del_k = g_nk.pow(2).mean(0).mul(0.5)
        broadcast = torch.stack([torch.full(tuple(m.weight.shape[1:]), float(v), dtype=torch.float64) for v in del_k])
        total += float(broadcast.sum())
    return total


def test_published_fisher_matches_an_independent_reference_on_an_unfused_einspace_network():
    arch = Architecture.from_string(CONV, (3, 8, 8))
    net = compile_architecture(arch, 4, fuse=False, seed=0)
    assert not any(isinstance(m, nn.Conv2d) for m in net.modules())  # im2col, Linear(27 -> 16), col2im
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)
    got = compute_proxies(net, x, y, 4, ("fisher",), fisher="published")["fisher"]
    # float32 activations and gradients, reduced in float64 by both: float32-rounding agreement
    assert got == pytest.approx(_reference_fisher(net, x, y), rel=1e-5)
    # the channel is the token axis (64 positions), not the Linear's 16 output features: another number
    feature = compute_proxies(net, x, y, 4, ("fisher",))["fisher"]
    assert not math.isclose(got, feature, rel_tol=1e-3)
    # every other published proxy is the same on the fused network
    fused = compile_architecture(arch, 4, seed=0)
    rest = tuple(p for p in PUBLISHED if p != "fisher")
    a, b = compute_proxies(net, x, y, 4, rest), compute_proxies(fused, x, y, 4, rest)
    for name in rest:
        assert a[name] == pytest.approx(b[name], rel=1e-4, nan_ok=True), name  # float32 conv vs unfold+matmul


def test_features_show_accepts_published(capsys):
    import json

    from nas.cli import main

    code = main(["features", "show", CONV, "--task", "language-mini", "--features", "published", "--json", "--all"])
    values = json.loads(capsys.readouterr().out)
    assert code == 0 and len(values) == 392 and list(values)[385:] == list(PUBLISHED)
