"""The zero-cost proxies' formulas: scores from weights, gradients, Jacobians and activation codes."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

#: Layers whose weights the proxies sum over.
LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)

#: Activations whose binary codes (pre-activation > 0) make the ``nwot`` kernel.
RELU_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.LeakyReLU)

#: ``k`` in the ``jacob_cov`` and ``epe_nas`` scores.
JACOBIAN_EPS = 1e-5

class ProxyError(RuntimeError):
    """A proxy is undefined for this network (the reason is the message); reported as NaN."""


class ProxyTimeout(ProxyError):
    """The proxy pass ran past its wall-clock safety limit (``compute_proxies(max_seconds=...)``); the
    proxies it had not finished are NaN with this reason."""


class NotApplicable(ProxyError):
    """The proxy does not apply to this kind of network at all (no ReLU for nwot, no weight layer); reported
    as NaN and logged at INFO level, since most random einspace networks have no ReLU."""


def _layers(net: nn.Module) -> list[nn.Module]:
    """The ``nn.Linear`` / ``nn.Conv2d`` modules of ``net`` (each once, in ``modules()`` order)."""
    layers = [m for m in net.modules() if isinstance(m, LAYER_TYPES) and getattr(m, "weight", None) is not None]
    if not layers:
        raise NotApplicable("the network has no nn.Linear or nn.Conv2d layer")
    return layers


def _weights_require_grad(model: nn.Module) -> nn.Module:
    """``model`` with its layer weights requiring gradients."""
    for m in model.modules():
        if isinstance(m, LAYER_TYPES) and getattr(m, "weight", None) is not None:
            m.weight.requires_grad_(True)
    return model


def _sum_over_layers(values: Iterable[Tensor]) -> float:
    """Σ of per-layer scalar tensors, accumulated in float64."""
    total = torch.zeros((), dtype=torch.float64)
    for v in values:
        total = total + v.detach().to("cpu", torch.float64)
    return float(total)


# --------------------------------------------------------------------------------------------------
# Scores computed from the shared pass
# --------------------------------------------------------------------------------------------------


def grad_norm_score(grads: Sequence[Tensor]) -> float:
    """``grad_norm = Σ_layers ‖G‖_F``: the Frobenius norm of each layer's weight gradient of the
    cross-entropy, summed over layers (Abdelfattah et al., 2021)."""
    return _sum_over_layers(g.double().norm() for g in grads)


def snip_score(weights: Sequence[Tensor], grads: Sequence[Tensor]) -> float:
    """``snip = Σ_layers Σ_elements |W ⊙ G|``: connection sensitivity (Lee et al., 2019), the gradient of
    the loss with respect to a multiplicative all-ones mask on every weight, in absolute value."""
    return _sum_over_layers((w.detach().double() * g.double()).abs().sum() for w, g in zip(weights, grads))


def plain_score(weights: Sequence[Tensor], grads: Sequence[Tensor]) -> float:
    """``plain = Σ_layers Σ_elements W ⊙ G`` (signed; Mozer & Smolensky's first-order saliency)."""
    return _sum_over_layers((w.detach().double() * g.double()).sum() for w, g in zip(weights, grads))


def fisher_layer(act: Tensor, grad: Tensor, channel_axis: int, fan_in: int = 1) -> Tensor:
    """One layer call's Fisher saliency (Theis et al., 2018; Turner et al., 2020):
    ``fan_in · Σ_c ½ · mean_n (Σ_{other axes} a_n ⊙ ∂L/∂a_n)²_c`` where ``a`` is the layer output and ``c``
    runs over the axis ``channel_axis`` of it.

    The default (``fan_in=1``, the caller passing axis 1 for ``Conv2d`` and the last axis for ``Linear``,
    which einspace applies to the last axis of 2-, 3- and 4-D tensors) counts each output feature once, as
    in the published definition.  The published einspace encoder (through the zero-cost-nas code) instead
    takes axis 1 as the channel for every layer and broadcasts each channel's value over
    ``weight.shape[1:]`` before summing, i.e. multiplies the layer's sum by its fan-in
    (``prod(weight.shape[1:])``): callers reproduce it with ``channel_axis=1`` and ``fan_in`` (the
    ``published`` mode of ``features.zcp.compute.compute_proxies``)."""
    prod = act.detach() * grad
    channel_axis %= prod.dim()
    other = tuple(d for d in range(1, prod.dim()) if d != channel_axis)
    # the product and its (cascade-summed) sums in the layer's dtype, then float64; a non-finite float32
    # sum (overflow) is redone in float64
    per_channel = (prod.sum(dim=other) if other else prod).double()
    if prod.dtype != torch.float64 and not bool(torch.isfinite(per_channel).all()):
        per_channel = act.detach().double().mul(grad.double()).sum(dim=other) if other else per_channel
    return 0.5 * per_channel.pow(2).mean(dim=0).sum() * int(fan_in)


def _corrcoef(J: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.corrcoef(J)


def jacob_cov_score(jacobians: np.ndarray, corr: np.ndarray | None = None) -> float:
    """``jacob_cov = −Σ_i [log(λ_i + k) + 1/(λ_i + k)]``, ``k = 1e-5``, where ``λ`` are the eigenvalues of
    the N×N correlation matrix ``corrcoef(J)`` of the flattened per-sample input Jacobians
    ``J_n = ∂(Σ outputs)/∂x_n`` (Mellor et al., 2020, first version of NASWOT).  The matrix is symmetric, so
    the eigenvalues are real (``eigvalsh``); the result does not depend on the order of the samples.
    ``corr``, optional: ``np.corrcoef(jacobians)`` if already computed."""
    J = np.asarray(jacobians, dtype=np.float64)
    if J.ndim != 2 or J.shape[0] < 2:
        raise ProxyError(f"needs at least 2 samples, got Jacobians of shape {J.shape}")
    if corr is None:
        corr = _corrcoef(J)
    if not np.all(np.isfinite(corr)):
        raise ProxyError("correlation of the input Jacobians is undefined (a sample's Jacobian is constant)")
    eig = np.linalg.eigvalsh(corr)
    shifted = eig + JACOBIAN_EPS
    if np.any(shifted <= 0):
        raise ProxyError(f"correlation matrix has an eigenvalue {eig.min():.3g} below −k")
    return float(-np.sum(np.log(shifted) + 1.0 / shifted))


def epe_nas_score(jacobians: np.ndarray, labels: np.ndarray, num_classes: int,
                  corr: np.ndarray | None = None) -> float:
    """EPE-NAS (Lopes et al., 2021).  For each class ``c`` present in the batch, with ``Σ_c`` the
    correlation matrix of the flattened input Jacobians ``J_n = ∂(Σ outputs)/∂x_n`` of its samples
    (``[[1]]`` for a class with one sample), ``e_c = Σ_ij log(|Σ_c[i, j]| + k)``, ``k = 1e-5``.  With at
    most 100 classes the score is ``Σ_c |e_c|``; with more, ``e_c`` is divided by the class's sample count
    and the score is ``Σ_{c, c'} |e_c − e_c'| / (number of classes present)``.  ``corr``, optional:
    ``np.corrcoef(jacobians)``, whose class blocks are the classes' correlation matrices (each entry
    depends on its two samples only), used instead of one ``corrcoef`` per class."""
    J = np.asarray(jacobians, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if J.ndim != 2 or len(J) != len(labels) or len(J) == 0:
        raise ProxyError(f"Jacobians of shape {J.shape} do not match {len(labels)} labels")
    per_class = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) == 1:
            block = np.ones((1, 1))
        elif corr is not None:
            block = corr[np.ix_(members, members)]
        else:
            block = _corrcoef(J[members])
        if not np.all(np.isfinite(block)):
            raise ProxyError(f"correlation of the input Jacobians of class {c} is undefined (constant Jacobian)")
        e = float(np.sum(np.log(np.abs(block) + JACOBIAN_EPS)))
        if num_classes > 100:
            e /= len(members)
        per_class.append(e)
    e = np.asarray(per_class)
    if num_classes <= 100:
        return float(np.sum(np.abs(e)))
    return float(np.sum(np.abs(e[:, None] - e[None, :])) / len(e))


def grasp_score(weights: Sequence[Tensor], hessian_grads: Sequence["Tensor | None"]) -> float:
    """GraSP (Wang et al., 2020): ``grasp = Σ_layers Σ_elements −W ⊙ (H g)`` with ``g = ∂L/∂W`` (held
    constant) and ``H = ∂²L/∂W²`` the Hessian of the cross-entropy with respect to all layer weights
    (temperature 1, one iteration).  ``H g = ∂/∂W (Σ g_const · ∂L/∂W)`` is computed by double
    back-propagation; ``g`` is the detached gradient of the same forward pass.  A layer whose ``H g`` is
    ``None`` (its gradient does not depend on the weights) contributes 0."""
    return _sum_over_layers(
        -(w.detach().double() * h.double()).sum() for w, h in zip(weights, hessian_grads) if h is not None
    )


class _NwotKernel:
    """Accumulates ``K = Σ_relus c cᵀ + (1 − c)(1 − c)ᵀ`` (float64, exact integer counts) from the inputs
    of the ReLU modules seen during a forward pass."""

    def __init__(self, batch: int, device: torch.device) -> None:
        self.batch = batch
        self.K = torch.zeros(batch, batch, dtype=torch.float64, device=device)
        self.units = 0
        self.error: ProxyError | None = None  # raised by ``score``, so the forward pass goes on

    def hook(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        a = inputs[0]
        if not isinstance(a, Tensor) or a.dim() == 0 or a.shape[0] != self.batch:
            shape = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
            self.error = ProxyError(f"{type(module).__name__} input {shape} is not a batch of {self.batch}")
            return
        codes = (a.detach() > 0).reshape(self.batch, -1)
        n = codes.shape[1]
        # 0/1 products sum to integers ≤ n: exact in float32 while n < 2^24.
        c = codes.to(torch.float32 if n < 2**24 else torch.float64)
        cc = (c @ c.T).double()
        s = codes.sum(dim=1, dtype=torch.float64)
        # (1−c)(1−c)ᵀ = n − s_i − s_j + c cᵀ
        self.K += 2 * cc - s[:, None] - s[None, :] + n
        self.units += n

    def score(self) -> float:
        if self.error is not None:
            raise self.error
        return nwot_score(self.K, self.units)


def nwot_score(K: Tensor, units: int) -> float:
    """NASWOT (Mellor et al., 2021): ``log |det K_H|`` with ``K_H = c cᵀ + (1 − c)(1 − c)ᵀ``, where row
    ``c_n`` of the binary matrix ``c`` concatenates, over every ReLU / LeakyReLU module, the indicators
    ``pre-activation > 0`` of sample ``n`` (``K_H[i, j]`` = number of units on which samples ``i`` and
    ``j`` agree).  Computed in float64 with ``slogdet``."""
    if units == 0:
        raise NotApplicable("the network has no ReLU activations (K_H = 0)")
    sign, logabsdet = torch.linalg.slogdet(K.double())
    if float(sign) == 0.0:
        raise ProxyError("K_H is singular (two samples share an activation code or too few units)")
    return float(logabsdet)
