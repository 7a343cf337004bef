"""Zero-cost proxies: each checked on tiny networks against a value computed by hand or by an independent
formula written here (numpy, float64), plus determinism, failure handling and the transformer."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

from features.zcp import ALL, ZeroCostProxies, compute_proxies, resolve_proxies
from features.zcp import compute as zcp
from features.zcp.scores import epe_nas_score

K_EPS = 1e-5


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal dicts where NaN equals NaN (bit-identical floats otherwise)."""
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _data(batch: int, shape: tuple[int, ...], classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *shape, generator=g), torch.randint(0, classes, (batch,), generator=g)


def _seeded(module_fn, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module_fn()


# -- names ---------------------------------------------------------------------------------------------


def test_resolve_proxies_all_alias_and_unknown():
    assert resolve_proxies("all") == ALL and len(ALL) == 13
    assert resolve_proxies(("jacov", "params", "jacob_cov")) == ("jacob_cov", "params")
    with pytest.raises(ValueError, match="unknown zero-cost proxy 'naswot'"):
        resolve_proxies(["naswot"])


# -- params and flops ----------------------------------------------------------------------------------


class _ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


def test_params_and_flops_exact_on_small_conv_net():
    net = _seeded(_ConvNet)
    x, y = _data(4, (3, 5, 5), 2)
    r = compute_proxies(net, x, y, 2, proxies=["params", "flops"])
    assert r["params"] == 4 * 3 * 9 + 4 + 4 * 2 + 2  # 122
    # conv: 2·C_out·C_in·k²·H·W per sample; head: 2·in·out (biases and the mean are not counted)
    assert r["flops"] == 2 * 4 * 3 * 9 * 5 * 5 + 2 * 4 * 2  # 5416


def test_params_and_flops_of_a_compiled_architecture():
    from nas.architecture import Architecture
    from nas.compile import compile_architecture

    arch = Architecture.from_string(
        "sequential(routing[im2col(3,1,1), computation<linear(16)>, col2im], sequential(computation<relu>, "
        "routing[im2col(1,1,0), computation<linear(32)>, col2im]))",
        (3, 6, 6),
    )
    net = compile_architecture(arch, 4, seed=0)
    x, y = _data(3, (3, 6, 6), 4)
    r = compute_proxies(net, x, y, 4, proxies=["params", "flops"], arch=arch)
    assert r["params"] == arch.num_params + arch.head_params(4) == (16 * 27 + 16) + (32 * 16 + 32) + (32 * 4 + 4)
    convs_and_head = 2 * 16 * 27 * 36 + 2 * 32 * 16 * 36 + 2 * 32 * 4
    relu = 16 * 36  # counted by the symbolic estimate, not by torch's counter
    assert r["flops"] == convs_and_head == arch.flops - relu + 2 * 32 * 4


# -- gradient proxies on one linear layer ---------------------------------------------------------------


def test_gradient_proxies_on_one_layer_match_numpy():
    B, d, K = 6, 5, 3
    net = _seeded(lambda: nn.Linear(d, K))
    x, y = _data(B, (d,), K)
    r = compute_proxies(net, x, y, K, proxies=["grad_norm", "snip", "plain", "grasp", "fisher"])

    X = x.double().numpy()
    W = net.weight.detach().double().numpy()
    b = net.bias.detach().double().numpy()
    Y = np.eye(K)[y.numpy()]
    z = X @ W.T + b
    p = _softmax(z)
    dz = (p - Y) / B  # ∂L/∂z of the mean cross-entropy
    G = dz.T @ X
    assert r["grad_norm"] == pytest.approx(np.linalg.norm(G), rel=1e-5)
    assert r["snip"] == pytest.approx(np.abs(W * G).sum(), rel=1e-5)
    assert r["plain"] == pytest.approx((W * G).sum(), rel=1e-4, abs=1e-7)

    # H·G: the derivative of ∂L/∂W in the direction G (bias held fixed)
    dzdir = X @ G.T
    dp = np.stack([(np.diag(p[n]) - np.outer(p[n], p[n])) @ dzdir[n] for n in range(B)])
    HG = (dp / B).T @ X
    assert r["grasp"] == pytest.approx(-(W * HG).sum(), rel=1e-4, abs=1e-8)

    # Fisher: the layer output a = z, one "channel" per output feature, no other axes
    g_nk = z * dz
    assert r["fisher"] == pytest.approx((0.5 * (g_nk**2).mean(axis=0)).sum(), rel=1e-5)


def test_gradient_of_two_layers_matches_autograd_reference():
    """grad_norm and snip sum over every Linear/Conv2d (head included) and ignore biases."""
    net = _seeded(lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 4)))
    x, y = _data(5, (2, 4, 4), 4)
    r = compute_proxies(net, x, y, 4, proxies=["grad_norm", "snip"])
    ref = [m.weight for m in (net[0], net[3])]
    grads = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), ref)
    assert r["grad_norm"] == pytest.approx(sum(float(g.norm()) for g in grads), rel=1e-5)
    assert r["snip"] == pytest.approx(sum(float((w.detach() * g).abs().sum()) for w, g in zip(ref, grads)), rel=1e-5)


# -- synflow ---------------------------------------------------------------------------------------------


def test_synflow_linear_chain_closed_form_and_batchnorm_removed():
    d0, d1, d2 = 4, 3, 2
    net = _seeded(
        lambda: nn.Sequential(nn.Linear(d0, d1, bias=False), nn.BatchNorm1d(d1), nn.Linear(d1, d2, bias=False))
    )
    x, y = _data(8, (d0,), d2)
    r = compute_proxies(net, x, y, d2, proxies=["synflow"])
    A1 = np.abs(net[0].weight.detach().double().numpy())
    A2 = np.abs(net[2].weight.detach().double().numpy())
    R = np.ones(d2) @ A2 @ A1 @ np.ones(d0)
    dR_dA1 = np.outer(A2.T @ np.ones(d2), np.ones(d0))
    dR_dA2 = np.outer(np.ones(d2), A1 @ np.ones(d0))
    expected = (A1 * dR_dA1).sum() + (A2 * dR_dA2).sum()
    assert expected == pytest.approx(2 * R)  # synaptic flow is conserved layer to layer
    assert r["synflow"] == pytest.approx(expected, rel=1e-12)


def test_synflow_overflow_is_nan_with_warning(caplog):
    net = nn.Sequential(*[nn.Linear(64, 64, bias=False) for _ in range(10)])
    with torch.no_grad():
        for m in net:
            m.weight.fill_(1e38)  # (64·1e38)^10 overflows float64
    x, y = _data(2, (64,), 4)
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        r = compute_proxies(net, x, y, 64, proxies=["synflow"])
    assert math.isnan(r["synflow"])
    assert "synflow" in caplog.text and "overflow" in caplog.text


# -- l2_norm ---------------------------------------------------------------------------------------------


def test_l2_norm_by_hand():
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([3.0, 4.0]).view(2, 1, 1, 1))  # ‖·‖ = 5
        net[0].bias.fill_(100.0)  # biases are ignored
        net[3].weight.fill_(1.0)  # ‖·‖ = 2
    x, y = _data(2, (1, 3, 3), 2)
    assert compute_proxies(net, x, y, 2, proxies=["l2_norm"]) == {"l2_norm": 7.0}


# -- nwot ------------------------------------------------------------------------------------------------


def test_nwot_with_known_relu_codes():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])  # codes 11, 10, 00
    y = torch.tensor([0, 1, 0])
    r = compute_proxies(net, x, y, 2, proxies=["nwot"])
    K = np.array([[2, 1, 0], [1, 2, 1], [0, 1, 2]])  # units on which two samples agree
    assert round(np.linalg.det(K)) == 4
    assert r["nwot"] == pytest.approx(math.log(4.0), rel=1e-12)


def test_nwot_without_relu_is_nan_with_a_logged_reason(caplog):
    net = nn.Linear(3, 2)
    x, y = _data(4, (3,), 2)
    with caplog.at_level(logging.INFO, logger="features.zcp"):
        r = compute_proxies(net, x, y, 2, proxies=["nwot"])
    assert math.isnan(r["nwot"]) and "'nwot'" in caplog.text and "no ReLU" in caplog.text


# -- jacob_cov and epe_nas ----------------------------------------------------------------------------------


def test_jacob_cov_of_a_linear_map_closed_form():
    """Every sample has the same Jacobian 1ᵀW, so corrcoef is the all-ones matrix: eigenvalues B, 0, …, 0."""
    B, d, K = 8, 6, 3
    net = _seeded(lambda: nn.Linear(d, K, bias=False))
    x, y = _data(B, (d,), K)
    r = compute_proxies(net, x, y, K, proxies=["jacov"])
    expected = -(math.log(B + K_EPS) + 1 / (B + K_EPS) + (B - 1) * (math.log(K_EPS) + 1 / K_EPS))
    assert list(r) == ["jacob_cov"]
    assert r["jacob_cov"] == pytest.approx(expected, rel=1e-6)


def test_jacob_cov_is_symmetric_in_the_samples():
    net = _seeded(lambda: nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)))
    x, y = _data(10, (5,), 3)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    a = compute_proxies(net, x, y, 3, proxies=["jacob_cov", "epe_nas"])
    b = compute_proxies(net, x[perm], y[perm], 3, proxies=["jacob_cov", "epe_nas"])
    # The Jacobians are float32: permuting the batch changes the order of BLAS reductions, so the two runs agree
    # to float32 rounding only (observed up to 5e-8 relative on some CPUs); 1e-5 holds across BLAS builds and is
    # still far below any change a wrong (order-dependent) formula would make.
    assert math.isfinite(a["jacob_cov"]) and a["jacob_cov"] == pytest.approx(b["jacob_cov"], rel=1e-5)
    assert math.isfinite(a["epe_nas"]) and a["epe_nas"] == pytest.approx(b["epe_nas"], rel=1e-5)


def test_epe_nas_of_a_linear_map_closed_form():
    """Identical Jacobians: each class's correlation matrix is all ones, e_c = n_c² · log(1 + k)."""
    net = _seeded(lambda: nn.Linear(6, 3, bias=False))
    x, _ = _data(7, (6,), 3)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 0])
    r = compute_proxies(net, x, y, 3, proxies=["epe_nas"])
    assert r["epe_nas"] == pytest.approx((16 + 4 + 1) * math.log(1 + K_EPS), rel=1e-9)


def test_epe_nas_many_classes_branch():
    J = np.tile(np.arange(5.0), (6, 1))  # identical rows: every correlation is 1
    labels = np.array([0, 0, 0, 1, 1, 2])
    n = np.array([3, 2, 1])
    e = n * math.log(1 + K_EPS)  # n_c² log(1+k) / n_c
    expected = np.abs(e[:, None] - e[None, :]).sum() / 3
    assert epe_nas_score(J, labels, num_classes=200) == pytest.approx(expected, rel=1e-9)
    assert epe_nas_score(J, labels, num_classes=10) == pytest.approx((9 + 4 + 1) * math.log(1 + K_EPS), rel=1e-9)


def test_constant_jacobian_makes_jacob_cov_nan_with_warning(caplog):
    net = nn.Linear(4, 2)
    with torch.no_grad():
        net.weight.zero_()
    x, y = _data(5, (4,), 2)
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        r = compute_proxies(net, x, y, 2, proxies=["jacob_cov", "epe_nas", "grad_norm"])
    assert math.isnan(r["jacob_cov"]) and math.isnan(r["epe_nas"]) and math.isfinite(r["grad_norm"])
    assert "'jacob_cov'" in caplog.text and "'epe_nas'" in caplog.text and "constant" in caplog.text


# -- zen ----------------------------------------------------------------------------------------------------


def test_zen_linear_chain_matches_gaussian_expectation():
    """Gaussian weights: E‖W₂W₁αε‖² = α²·d₀d₁d₂, so zen ≈ log(α·sqrt(d₀d₁d₂)), without a BN term."""
    d0, d1, d2 = 64, 128, 32
    net = nn.Sequential(nn.Linear(d0, d1, bias=False), nn.Linear(d1, d2, bias=False))
    x, y = _data(64, (d0,), d2)
    r = compute_proxies(net, x, y, d2, proxies=["zen"])
    assert r["zen"] == pytest.approx(math.log(zcp.ZEN_ALPHA * math.sqrt(d0 * d1 * d2)), abs=0.1)


def test_zen_adds_the_batchnorm_scaling_term():
    """After BN the perturbation has about unit variance per channel (Δ ≈ α·sqrt(d₁)); the BN input has
    variance ≈ d₀ per channel, adding log sqrt(d₀)."""
    d0, d1 = 64, 128
    net = nn.Sequential(nn.Linear(d0, d1, bias=False), nn.BatchNorm1d(d1))
    x, y = _data(64, (d0,), 4)
    r = compute_proxies(net, x, y, d1, proxies=["zen"])
    expected = math.log(zcp.ZEN_ALPHA * math.sqrt(d1)) + 0.5 * math.log(d0)
    assert r["zen"] == pytest.approx(expected, abs=0.15)


def test_zen_falls_back_to_float64_when_float32_overflows():
    """45 Gaussian 64×64 layers grow the perturbation by about 8^45 (beyond float32's range)."""
    depth, d = 45, 64
    net = nn.Sequential(*[nn.Linear(d, d, bias=False) for _ in range(depth)])
    x, y = _data(4, (d,), 4)
    r = compute_proxies(net, x, y, d, proxies=["zen"])
    expected = math.log(zcp.ZEN_ALPHA) + 0.5 * (depth + 1) * math.log(d)
    assert expected - math.log(zcp.ZEN_ALPHA) > math.log(torch.finfo(torch.float32).max)
    assert math.isfinite(r["zen"]) and r["zen"] == pytest.approx(expected, abs=2.0)


# -- determinism, isolation, failures ------------------------------------------------------------------------


def _small_bn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


def test_deterministic_isolated_and_seed_dependent():
    net = _seeded(_small_bn_net)
    x, y = _data(12, (3, 8, 8), 4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng_before = torch.get_rng_state()
    a = compute_proxies(net, x, y, 4, seed=0)
    b = compute_proxies(net, x, y, 4, seed=0)
    c = compute_proxies(net, x, y, 4, seed=1)
    assert list(a) == list(ALL)
    assert all(math.isfinite(v) for v in a.values()), a
    assert _same(a, b)
    assert a["zen"] != c["zen"]  # Gaussian weights and inputs come from the seed
    assert _same({k: v for k, v in a.items() if k != "zen"}, {k: v for k, v in c.items() if k != "zen"})
    # the caller's network, its mode and the global RNG are untouched
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training and torch.equal(rng_before, torch.get_rng_state())
    # callers in no-grad or inference mode get the same numbers
    with torch.no_grad():
        assert _same(compute_proxies(net, x, y, 4, seed=0), a)
    with torch.inference_mode():
        assert _same(compute_proxies(net, x.clone(), y.clone(), 4, seed=0), a)


def test_proxies_computed_alone_equal_proxies_computed_together():
    net = _seeded(_small_bn_net)
    x, y = _data(8, (3, 6, 6), 4)
    together = compute_proxies(net, x, y, 4)
    for name in ALL:
        assert _same(compute_proxies(net, x, y, 4, proxies=[name]), {name: together[name]}), name


class _NaNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x) * float("nan")


def test_nan_network_gives_nan_and_warnings_never_raises(caplog):
    net = _seeded(_NaNNet)
    x, y = _data(6, (4,), 3)
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        r = compute_proxies(net, x, y, 3)
    for name in ("grad_norm", "snip", "grasp", "plain", "fisher", "jacob_cov", "epe_nas", "synflow", "zen"):
        assert math.isnan(r[name]), name
        assert f"'{name}'" in caplog.text
    assert r["params"] == 15 and r["flops"] == 24 and math.isfinite(r["l2_norm"])


def test_network_without_layers_fails_only_the_weight_proxies(caplog):
    net = nn.Sequential(nn.ReLU())
    x = torch.eye(4) - 0.5  # ReLU codes e_1, …, e_4
    y = torch.tensor([0, 1, 2, 3])
    with caplog.at_level(logging.INFO, logger="features.zcp"):
        r = compute_proxies(net, x, y, 4, proxies=["grad_norm", "grasp", "fisher", "nwot", "params"])
    assert all(math.isnan(r[n]) for n in ("grad_norm", "grasp", "fisher"))
    K = np.full((4, 4), 2.0) + 2 * np.eye(4)  # codes e_i: agree on 2 of 4 units, 4 with themselves
    assert r["nwot"] == pytest.approx(math.log(np.linalg.det(K))) and r["params"] == 0
    assert "no nn.Linear or nn.Conv2d layer" in caplog.text


def test_a_raising_proxy_is_nan_with_its_reason(caplog, monkeypatch):
    def boom(_inputs):
        raise RuntimeError("kaboom")

    monkeypatch.setitem(zcp.STANDALONE, "synflow", boom)
    net = _seeded(_small_bn_net)
    x, y = _data(4, (3, 6, 6), 4)
    with caplog.at_level(logging.WARNING, logger="features.zcp"):
        r = compute_proxies(net, x, y, 4, proxies=["synflow", "params"])
    assert math.isnan(r["synflow"]) and r["params"] > 0
    assert "'synflow'" in caplog.text and "RuntimeError: kaboom" in caplog.text


def test_bad_inputs_raise_clear_errors():
    net = nn.Linear(3, 2)
    x, y = _data(4, (3,), 2)
    with pytest.raises(ValueError, match="labels in 0..1"):
        compute_proxies(net, x, y + 5, 2)
    with pytest.raises(ValueError, match="batch"):
        compute_proxies(net, x, y[:2], 2)


# -- transformer ----------------------------------------------------------------------------------------------


def _task(n: int = 24):
    from data.tasks import Split, Task

    rng = np.random.default_rng(0)

    def split(m: int) -> Split:
        return Split(rng.normal(2.0, 3.0, (m, 3, 16, 16)).astype(np.float32), rng.integers(0, 4, m).astype(np.int64))

    return Task(name="tiny", input_shape=(3, 16, 16), num_classes=4, train=split(n), valid=split(4), test=split(4))


def test_transformer_on_random_einspace_architectures():
    from nas.grammar import Budget
    from nas.sampler import Sampler

    sampler = Sampler("einspace", (3, 16, 16), Budget(max_params=50_000))
    archs = [sampler.sample(seed) for seed in range(3)]
    task = _task()
    zc = ZeroCostProxies(task=task, batch_size=8, seed=0)
    X = zc.fit(archs).transform(archs)
    assert X.shape == (3, 13) and X.dtype == np.float64
    assert list(zc.get_feature_names_out()) == list(ALL)
    assert not np.isinf(X).any()
    params = X[:, ALL.index("params")]
    assert params.tolist() == [a.num_params + a.head_params(4) for a in archs]
    np.testing.assert_array_equal(zc.transform(archs), X)  # deterministic, NaN in the same places
    assert zc.version == "1"


def test_transformer_batch_is_the_normalised_head_of_the_training_split():
    task = _task()
    x, y = ZeroCostProxies(task=task, batch_size=5).batch()
    full = task.train.x.astype(np.float64)
    mean = full.mean(axis=(0, 2, 3), keepdims=True)
    std = full.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(x.numpy(), (full[:5] - mean) / std, rtol=1e-5, atol=1e-5)
    assert y.tolist() == task.train.y[:5].tolist()


def test_transformer_subset_names_and_checks():
    from sklearn.base import clone

    zc = ZeroCostProxies(task=_task(), proxies=["jacov", "params"])
    assert list(zc.get_feature_names_out()) == ["jacob_cov", "params"]
    assert clone(zc).get_params()["proxies"] == ["jacov", "params"]
    with pytest.raises(ValueError, match="needs a task"):
        ZeroCostProxies().fit([])
