"""Zero-cost proxies (ZCP): 13 scalar scores of an untrained network from one mini-batch.

These are the 13 proxies of NAS-Bench-Suite-Zero (Krishnakumar et al., 2022), written here from their
published definitions.  Each proxy's formula is stated in the docstring of the function that computes it.
Notation: ``L`` is the mean cross-entropy of the network's logits on the mini-batch ``(x, y)``; "layers"
are the ``nn.Linear`` and ``nn.Conv2d`` modules of the network (the compiler fuses im2col → linear →
col2im into ``Conv2d``), the classification head included; ``W`` is a layer's weight (biases are
ignored) and ``G = ∂L/∂W``.  Networks run in train mode (BatchNorm with batch statistics) unless a
definition says otherwise.

======================  ============================================================================
proxy                   definition (summary; details in the function docstrings)
======================  ============================================================================
``grad_norm``           Σ_layers ‖G‖_F
``snip``                Σ_layers Σ |W ⊙ G|
``grasp``               Σ_layers Σ −W ⊙ (H G),  H = ∂²L/∂W²
``fisher``              Σ_layers Σ_channels ½ · mean_n (Σ_{non-channel axes} a ⊙ ∂L/∂a)²,  a = layer output
                        (``fisher="published"``: channel = axis 1, each layer × its fan-in)
``jacob_cov``           −Σ_i [log(λ_i + k) + 1/(λ_i + k)],  λ = eig(corrcoef(J)),  J_n = ∂(Σ out)/∂x_n
``plain``               Σ_layers Σ W ⊙ G
``synflow``             Σ_layers Σ |W ⊙ ∂R/∂W|,  R = 1ᵀ f_|θ|(1) in float64, BatchNorm removed
``nwot``                log |det K|,  K = c cᵀ + (1 − c)(1 − c)ᵀ over binary ReLU codes c
``epe_nas``             Σ_classes |Σ_ij log(|corrcoef(J_class)_ij| + k)|   (≤ 100 classes)
``l2_norm``             Σ_layers ‖W‖_F
``zen``                 log E‖f(x) − f(x + αε)‖_F + Σ_BN log sqrt(mean_channels σ²)
``params``              number of trainable parameters (raw count, head included)
``flops``               FLOPs of one sample's forward pass as ``torch.utils.flop_counter`` counts them
======================  ============================================================================

Passes (``compute_proxies`` works on one deep copy of the network, reset to the caller's parameter and
buffer values before each pass; the caller's network is never changed):

* **one shared train-mode pass** serves ``grad_norm, snip, grasp, fisher, plain, jacob_cov, epe_nas,
  nwot``: a single forward pass with hooks (layer outputs for ``fisher``, ReLU input codes for ``nwot``);
  one backward of ``L`` to the layer weights and layer outputs (``G`` for ``grad_norm, snip, plain`` and
  ``grasp``'s ``g``; ``∂L/∂a`` for ``fisher``), kept differentiable (``create_graph``) when ``grasp`` is
  asked for, so that one more backward gives ``grasp``'s Hessian-vector product; and one backward of
  ``Σ outputs`` to the input (the Jacobian shared by ``jacob_cov`` and ``epe_nas``, whose per-class
  correlation matrices are blocks of ``jacob_cov``'s).  Train-mode forwards of one batch are
  deterministic and BatchNorm running statistics do not enter train-mode outputs, so this equals
  separate passes on fresh copies (and ``G`` is bit-identical with or without ``create_graph``).  An
  error in a later backward only makes the proxies that need it NaN.
* ``flops``: in closed form from the architecture when ``arch`` is given with its compiled network
  (``architecture_flops``, the number ``FlopCounterMode`` counts); otherwise one no-grad eval-mode
  forward of one sample under ``FlopCounterMode``.
* ``zen``: two no-grad forwards of Gaussian inputs on the copy re-initialised with Gaussian weights.
* ``synflow`` (last: it removes the copy's BatchNorms and makes it float64): its own float64 forward +
  backward of one all-ones sample.
* ``l2_norm`` and ``params`` read the weights only.

The global RNG (dropout) is re-seeded with ``seed`` before each pass, so a proxy's value does not depend on
which others are computed with it.  Large float32 reductions (``fisher``'s per-channel sums, ``zen``'s
per-sample norms and BatchNorm variances) are summed in float32 and finished in float64, which agrees with
a float64 computation to float32 rounding; where float32 overflows they are redone in float64.

Failures never raise: a proxy whose computation raises, or whose value is not finite, becomes NaN and a
``logging`` warning names the proxy and the reason (inside a step that featurises many networks, these go
to DEBUG and the step ends with one summary line: ``features.proxy_warnings``).  ``max_seconds`` is a wall-clock safety net (checked
between passes and before every module's forward): the proxies it cuts off are NaN, logged once with the
reason ``timeout: ...``.  Size budgets are checked earlier, on the architecture (``features.zcp.guard``).  The batch is not split on out-of-memory errors (the
foresight code's ``split_data``): an OOM makes the proxies of the failing pass NaN.  Cost grows with the
activation sizes, not only FLOPs: ``grasp``'s Hessian-vector product is the most expensive step.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import weakref
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from features import proxy_warnings as report
from features.zcp.flops import architecture_flops, forward_flops
from features.zcp.scores import (
    LAYER_TYPES,
    RELU_TYPES,
    NotApplicable,
    ProxyError,
    ProxyTimeout,
    _corrcoef,
    _layers,
    _NwotKernel,
    _sum_over_layers,
    _weights_require_grad,
    epe_nas_score,
    fisher_layer,
    grad_norm_score,
    grasp_score,
    jacob_cov_score,
    plain_score,
    snip_score,
)

log = logging.getLogger(__name__)

#: The 13 proxies in feature order (the first seven in the order of the published einspace encoder).
ALL: tuple[str, ...] = (
    "grad_norm",
    "snip",
    "grasp",
    "fisher",
    "jacob_cov",
    "plain",
    "synflow",
    "nwot",
    "epe_nas",
    "l2_norm",
    "zen",
    "params",
    "flops",
)

#: Other names accepted for a proxy; results are always reported under the canonical name.
ALIASES: dict[str, str] = {"jacov": "jacob_cov"}

#: Proxies computed from the shared train-mode forward pass.
SHARED: tuple[str, ...] = ("grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "epe_nas", "nwot")

_BATCHNORM_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

#: How ``fisher`` is computed: ``feature`` (each layer's output features count once) or ``published`` (the
#: published einspace encoder's: channel = axis 1 of every layer output, each layer weighted by its fan-in;
#: ``scores.fisher_layer``).
FISHER_MODES: tuple[str, ...] = ("feature", "published")

#: ``α``, the scale of the input perturbation in ``zen``.
ZEN_ALPHA = 0.01


def resolve_proxies(proxies: "str | Iterable[str]" = ALL) -> tuple[str, ...]:
    """Canonical proxy names, in the requested order, without duplicates.  ``"all"`` (alone or as an
    element) means every proxy in ``ALL`` order; aliases (``jacov``) map to canonical names."""
    if isinstance(proxies, str):
        proxies = (proxies,)
    names: list[str] = []
    for raw in proxies:
        if not isinstance(raw, str):
            raise TypeError(f"proxy names must be strings, got {raw!r}")
        name = raw.strip().lower()
        expanded = ALL if name == "all" else (ALIASES.get(name, name),)
        for n in expanded:
            if n not in ALL:
                raise ValueError(f"unknown zero-cost proxy {raw!r}; expected 'all' or some of {', '.join(ALL)} "
                                 f"(aliases: {', '.join(f'{a}={c}' for a, c in ALIASES.items())})")
            if n not in names:
                names.append(n)
    if not names:
        raise ValueError("no zero-cost proxy requested")
    return tuple(names)


# --------------------------------------------------------------------------------------------------
# The network copies the passes use
# --------------------------------------------------------------------------------------------------


class _Workspace:
    """The one deep copy of the caller's network that the passes use in turn (deep-copying a network of
    many small modules costs more than some of the passes).  ``borrow`` hands it out with every parameter
    and buffer reset to the caller's values, so no pass sees what an earlier one left behind (BatchNorm
    statistics, ``zen``'s Gaussian weights); a pass that changes it beyond its tensor values (dtype,
    modules removed) calls ``spoil`` and the next ``borrow`` makes a new copy.  Valid for modules whose
    state is their parameters and buffers, which is what ``copy.deepcopy`` of a fresh copy would give."""

    def __init__(self, net: nn.Module, device: torch.device) -> None:
        self.net = net
        self.device = device
        self._model: nn.Module | None = None
        self._dirty = False

    def borrow(self, train: bool = True) -> nn.Module:
        """The copy on ``device``, in train (or eval) mode, with the caller's parameter and buffer values."""
        model = self._model
        if model is None:
            model = self._model = copy.deepcopy(self.net).to(self.device)
        elif self._dirty:
            source = dict(self.net.named_parameters())
            source.update(self.net.named_buffers())
            with torch.no_grad():
                for name, t in (*model.named_parameters(), *model.named_buffers()):
                    t.copy_(source[name])
        self._dirty = True
        return model.train(train)

    def spoil(self) -> None:
        """The borrowed copy has changed beyond its tensor values: the next ``borrow`` copies anew."""
        self._model = None


class _Deadline:
    """The wall-clock safety limit of one ``compute_proxies`` call (``None``: none).  ``check`` raises
    ``ProxyTimeout`` once it has passed; it is called between passes and, through forward pre-hooks that
    ``watch`` puts on the copies the passes run, before every module's forward.  A backward already
    running finishes first (autograd cannot be interrupted from Python)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()
        self._watched: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()

    def check(self, *_: Any) -> None:
        if self.seconds is None:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed > self.seconds:
            raise ProxyTimeout(f"timeout: the proxies ran past the {self.seconds:g} s safety limit "
                               f"({elapsed:.1f} s)")

    def watch(self, model: nn.Module) -> nn.Module:
        """``model`` with a deadline check before each of its modules' forward (hooks put on once)."""
        if self.seconds is not None and model not in self._watched:
            for m in model.modules():
                m.register_forward_pre_hook(self.check)
            self._watched.add(model)
        return model


@dataclass(frozen=True)
class _Inputs:
    net: nn.Module
    x: Tensor
    y: Tensor
    num_classes: int
    seed: int
    arch: Any = None
    workspace: _Workspace | None = None
    deadline: _Deadline = field(default_factory=lambda: _Deadline(None))
    fisher: str = "feature"

    def model(self, train: bool = True) -> nn.Module:
        """A copy of ``net`` on ``x``'s device with the caller's values (shared between passes when
        ``workspace`` is set), watched by the deadline."""
        if self.workspace is None:
            return self.deadline.watch(copy.deepcopy(self.net).to(self.x.device).train(train))
        return self.deadline.watch(self.workspace.borrow(train))

    def spoil(self) -> None:
        if self.workspace is not None:
            self.workspace.spoil()


# --------------------------------------------------------------------------------------------------
# The shared pass
# --------------------------------------------------------------------------------------------------


def _shared_pass(inp: _Inputs, wanted: set[str]) -> dict[str, "float | Exception"]:
    """Every proxy in ``SHARED ∩ wanted`` from one train-mode forward on a fresh copy (see module doc)."""
    results: dict[str, float | Exception] = {}
    need_grad = wanted & {"grad_norm", "snip", "grasp", "plain", "fisher"}
    need_jac = wanted & {"jacob_cov", "epe_nas"}
    grasp = "grasp" in wanted
    model = _weights_require_grad(inp.model())
    layers: list[nn.Module] = []
    if need_grad:
        try:
            layers = _layers(model)
        except ProxyError as exc:  # the other shared proxies need no layers
            results.update({name: exc for name in need_grad})
            need_grad = set()
    kernel = _NwotKernel(inp.x.shape[0], inp.x.device) if "nwot" in wanted else None
    out, x, acts = _shared_forward(inp, model, layers if "fisher" in need_grad else [], kernel, bool(need_jac),
                                   bool(need_grad or need_jac))
    if kernel is not None:
        try:
            results["nwot"] = kernel.score()
        except Exception as exc:  # noqa: BLE001 - reported as NaN
            results["nwot"] = exc

    def attempt(name: str, fn: Callable[[], float]) -> None:
        if name in wanted:
            try:
                results[name] = fn()
            except Exception as exc:  # noqa: BLE001 - reported as NaN
                results[name] = exc

    weights = [m.weight for m in layers]
    grads: Sequence[Tensor | None] = ()
    if need_grad:
        try:
            inp.deadline.check()
            with torch.enable_grad():
                loss = F.cross_entropy(out, inp.y)
                outs = [a for _, a, _ in acts]
                grads = torch.autograd.grad(loss, weights + outs, allow_unused=True, create_graph=grasp,
                                            retain_graph=bool(need_jac) or grasp)
        except Exception as exc:  # noqa: BLE001
            results.update({name: exc for name in need_grad})
        else:
            _gradient_scores(weights, grads, acts, attempt, inp.fisher)
    if need_jac:
        try:
            inp.deadline.check()
            (jac,) = torch.autograd.grad(out.sum(), x, retain_graph=grasp and "grasp" not in results)
            J = jac.detach().reshape(x.shape[0], -1).to("cpu", torch.float64).numpy()
        except Exception as exc:  # noqa: BLE001
            results.update({name: exc for name in need_jac})
        else:
            _jacobian_scores(inp, J, attempt)
    if grasp and "grasp" not in results:
        def hessian() -> float:
            inp.deadline.check()
            return _hessian_grad_score(weights, grads)

        attempt("grasp", hessian)
    return results


def _shared_forward(
    inp: _Inputs, model: nn.Module, fisher_layers: list[nn.Module], kernel: "_NwotKernel | None", need_jac: bool,
    grad: bool,
) -> tuple[Tensor, Tensor, list[tuple[nn.Module, Tensor, int]]]:
    """The shared forward: its output, the input leaf, and the outputs (with their versions) of
    ``fisher_layers``; ReLU input codes go to ``kernel``."""
    acts: list[tuple[nn.Module, Tensor, int]] = []
    with ExitStack() as stack:
        def keep_output(module: nn.Module, _inputs: Any, output: Tensor) -> None:
            acts.append((module, output, output._version))

        for m in fisher_layers:
            stack.callback(m.register_forward_hook(keep_output).remove)
        if kernel is not None:
            for m in model.modules():
                if isinstance(m, RELU_TYPES):
                    stack.callback(m.register_forward_pre_hook(kernel.hook).remove)
        x = inp.x.detach().requires_grad_(need_jac)  # a new leaf on the same storage
        with torch.set_grad_enabled(grad):
            out = model(x)
    return out, x, acts


def _gradient_scores(
    weights: list[Tensor], grads: Sequence["Tensor | None"], acts: list[tuple[nn.Module, Tensor, int]],
    attempt: Callable[[str, Callable[[], float]], None], fisher_mode: str = "feature",
) -> None:
    """``grad_norm``, ``snip``, ``plain`` and ``fisher`` (in ``fisher_mode``, see ``FISHER_MODES``) from the
    loss gradients."""
    g_w = [torch.zeros_like(w) if g is None else g.detach() for w, g in zip(weights, grads)]
    attempt("grad_norm", lambda: grad_norm_score(g_w))
    attempt("snip", lambda: snip_score(weights, g_w))
    attempt("plain", lambda: plain_score(weights, g_w))

    def fisher() -> float:
        per_call = []
        for (module, a, version), g in zip(acts, grads[len(weights):]):
            if a._version != version:
                raise ProxyError(f"the output of {type(module).__name__} was modified in place")
            if g is None:
                continue
            if fisher_mode == "published":
                fan_in = math.prod(module.weight.shape[1:])
                per_call.append(fisher_layer(a, g.detach(), 1, fan_in))
            else:
                per_call.append(fisher_layer(a, g.detach(), 1 if isinstance(module, nn.Conv2d) else -1))
        return _sum_over_layers(per_call)

    attempt("fisher", fisher)


def _jacobian_scores(inp: _Inputs, J: np.ndarray, attempt: Callable[[str, Callable[[], float]], None]) -> None:
    """``jacob_cov`` and ``epe_nas`` from the input Jacobian, sharing one correlation matrix."""
    try:
        corr = _corrcoef(J) if J.shape[0] >= 2 else None
    except Exception:  # noqa: BLE001 - each score computes its own, and reports the failure
        corr = None
    attempt("jacob_cov", lambda: jacob_cov_score(J, corr))
    attempt("epe_nas", lambda: epe_nas_score(J, inp.y.cpu().numpy(), inp.num_classes, corr))


def _hessian_grad_score(weights: list[Tensor], grads: Sequence["Tensor | None"]) -> float:
    """``grasp``: H g = ∂/∂W (Σ g_const · g), the backward of the gradients with g itself as their cotangent."""
    live = [g for g in grads[: len(weights)] if g is not None and g.requires_grad]
    if not live:  # no gradient depends on the weights: H g = 0
        return 0.0
    with torch.enable_grad():
        hg = torch.autograd.grad(live, weights, grad_outputs=[g.detach() for g in live], allow_unused=True)
    return grasp_score(weights, hg)


# --------------------------------------------------------------------------------------------------
# Proxies with passes of their own
# --------------------------------------------------------------------------------------------------


def _remove_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm module by ``nn.Identity`` (in place; returns the possibly new root)."""
    if isinstance(model, _BATCHNORM_TYPES):
        return nn.Identity()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BATCHNORM_TYPES):
                setattr(parent, name, nn.Identity())
    return model


def synflow_proxy(inp: _Inputs) -> float:
    """SynFlow (Tanaka et al., 2020): on a copy whose parameters and buffers are replaced by their
    absolute values, with every BatchNorm replaced by the identity (``bn=False`` in the zero-cost code;
    LayerNorm is kept), run in float64 on one all-ones input of the data shape ``R = Σ outputs``; the score
    is ``Σ_layers Σ_elements |W ⊙ ∂R/∂W|``.

    The raw float64 value is returned (no log scaling): it can exceed the float32 range.  When ``R`` or the
    score overflows float64 the proxy is reported as NaN with a warning."""
    model = inp.model()
    inp.spoil()  # BatchNorm removed and float64: the shared copy cannot be reset to the caller's network
    model = _remove_batchnorm(model).to(dtype=torch.float64).train()
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            t.abs_()
    layers = _layers(model)
    for m in layers:
        m.weight.requires_grad_(True)
    weights = [m.weight for m in layers]
    ones = torch.ones((1, *inp.x.shape[1:]), dtype=torch.float64, device=inp.x.device)
    with torch.enable_grad():
        R = model(ones).sum()
        if not torch.isfinite(R):
            raise ProxyError(f"R = Σ outputs is {float(R.detach())} in float64 (overflow)")
        grads = torch.autograd.grad(R, weights, allow_unused=True)
    return _sum_over_layers((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None)


def _gaussian_init(model: nn.Module, gen: torch.Generator) -> None:
    """Zen-NAS initialisation: Linear/Conv2d weights ~ N(0, 1) and biases 0; normalisation layers'
    affine weight 1 and bias 0.  Draws on the CPU from ``gen`` in ``modules()`` order, so the weights do
    not depend on the device."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LAYER_TYPES):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, _BATCHNORM_TYPES + (nn.LayerNorm, nn.GroupNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.fill_(1.0)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()


def _row_norms(a: Tensor, b: Tensor, overwrite: bool = False) -> Tensor:
    """Per-sample ``‖a_n − b_n‖_F`` in float64; with ``overwrite``, ``a`` is overwritten with ``a − b`` when
    it can be (no new feature-map-sized tensor).  The difference (exact where ``a`` and ``b`` are within a factor 2 of each
    other), its squares and their (cascade) sums are taken in the inputs' dtype, a few rows at a time: for
    float32 within float32 rounding of a float64 computation.  Where a float32 square overflows, the
    norms are taken in float64 one sample at a time."""
    B = a.shape[0]
    d = None
    if overwrite:
        try:
            d = a.sub_(b)
        except RuntimeError:  # a is a broadcast view or otherwise not writable
            pass
    if d is None:
        d = a - b
    d = d.reshape(B, -1)
    rows = max(1, (1 << 18) // max(1, d.shape[1]))
    sq = torch.cat([part.square().sum(dim=1) for part in d.split(rows)])
    if sq.dtype == torch.float64 or bool(torch.isfinite(sq).all()):
        return sq.double().sqrt()
    return torch.stack([torch.linalg.vector_norm(row, dtype=torch.float64) for row in d])


def _zen_once(feature: nn.Module, x0: Tensor, eps: Tensor) -> float:
    bn_var: list[Tensor] = []

    def record(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        a = inputs[0].detach()
        dims = [d for d in range(a.dim()) if d != 1]
        v = a.var(dim=dims, unbiased=False)
        if v.dtype != torch.float64 and not bool(torch.isfinite(v).all()):  # overflow in float32
            v = a.double().var(dim=dims, unbiased=False)
        bn_var.append(v.double().mean())

    handles = [m.register_forward_pre_hook(record) for m in feature.modules() if isinstance(m, _BATCHNORM_TYPES)]
    try:
        with torch.no_grad():
            f0 = feature(x0)
            for h in handles:
                h.remove()
            f1 = feature(torch.add(x0, eps, alpha=ZEN_ALPHA))
    finally:
        for h in handles:
            h.remove()
    # f0 is no longer needed, unless it is (a view of) the input, which a float64 retry reuses
    delta = _row_norms(f0, f1, overwrite=f0.untyped_storage().data_ptr() != x0.untyped_storage().data_ptr()).mean()
    if not math.isfinite(float(delta)):
        return math.nan  # overflow: the caller may retry in float64
    if float(delta) == 0.0:
        raise ProxyError("the feature map does not change under the input perturbation (Δ = 0)")
    score = torch.log(delta).cpu()
    for v in bn_var:
        score = score + 0.5 * torch.log(v).cpu()
    return float(score)


def zen_proxy(inp: _Inputs) -> float:
    """Zen-score (Lin et al., 2021): on a copy re-initialised as in Zen-NAS (Linear/Conv2d weights
    ~ N(0, 1), biases 0, norm affines 1/0) in train mode,
    ``zen = log E_{x, ε} ‖f(x) − f(x + α ε)‖_F + Σ_{BN layers i} log sqrt(mean_j σ²_ij)`` with ``x, ε ~
    N(0, I)`` of the mini-batch's shape (one draw, ``α = 0.01``), ``f`` the pre-pooling feature map (the
    network's ``backbone`` when it has one, else its output), ``‖·‖_F`` per sample, ``E`` the batch mean,
    and ``σ²_ij`` the batch variance of channel ``j`` at the input of BatchNorm ``i`` in the unperturbed
    pass.  On networks without BatchNorm the score is the feature-difference term alone.

    Differences from the published code: the per-sample norm is the Frobenius norm of the paper (the code
    uses the L1 norm) and ``σ²`` is the batch variance of the paper (the code reads ``running_var`` after
    one momentum-0.1 update).  The weights and inputs are drawn on the CPU from a ``torch.Generator``
    seeded with ``seed``.  The forwards run in float32; if that overflows, they are repeated in float64
    on the same draws."""
    model = inp.model()
    gen = torch.Generator(device="cpu").manual_seed(inp.seed)
    _gaussian_init(model, gen)
    x0 = torch.randn(tuple(inp.x.shape), generator=gen)
    eps = torch.randn(tuple(inp.x.shape), generator=gen)
    feature = model.backbone if isinstance(getattr(model, "backbone", None), nn.Module) else model
    dtype = inp.x.dtype if inp.x.is_floating_point() else torch.float32
    value = _zen_once(feature, x0.to(inp.x.device, dtype), eps.to(inp.x.device, dtype))
    if math.isfinite(value) or dtype == torch.float64:
        return value
    log.debug("zen overflowed in %s; repeating in float64", dtype)
    inp.spoil()
    feature = feature.double()
    return _zen_once(feature, x0.to(inp.x.device, torch.float64), eps.to(inp.x.device, torch.float64))


def l2_norm_proxy(inp: _Inputs) -> float:
    """``l2_norm = Σ_layers ‖W‖_F``: the Frobenius (entry-wise L2) norm of each layer's weight, summed
    over layers, at initialisation (no data needed)."""
    with torch.no_grad():
        return _sum_over_layers(m.weight.detach().double().norm() for m in _layers(inp.net))


def params_proxy(inp: _Inputs) -> float:
    """``params``: the raw number of trainable parameters (``requires_grad``) of the whole network, head,
    normalisation and positional encodings included; shared tensors count once.  (NASLib reports
    millions; this is the plain count.)"""
    return float(sum(p.numel() for p in inp.net.parameters() if p.requires_grad))


def flops_proxy(inp: _Inputs) -> float:
    """``flops``: floating-point operations of the forward pass of one sample (the mini-batch's first),
    in eval mode, counted by ``torch.utils.flop_counter.FlopCounterMode``: matrix products and
    convolutions, head included, a multiply-add counting two; element-wise operations, normalisation,
    pooling and biases are not counted.  For compiled einspace networks this equals the matmul part of
    ``Architecture.flops`` plus ``2 · width · num_classes`` for the head, and when ``arch`` is given with
    the network it was compiled into, that closed form (``architecture_flops``) is returned without
    running the network."""
    closed = architecture_flops(inp.net, inp.arch, tuple(inp.x.shape[1:]))
    if closed is not None:
        return float(closed)
    model = inp.model(train=False)  # the count depends on shapes only, not on the values
    return float(forward_flops(model, inp.x[:1].detach()))


#: Proxies computed by their own function from the inputs; looked up at call time.
STANDALONE: dict[str, Callable[[_Inputs], float]] = {
    "synflow": synflow_proxy,
    "zen": zen_proxy,
    "l2_norm": l2_norm_proxy,
    "params": params_proxy,
    "flops": flops_proxy,
}

#: The order in which ``compute_proxies`` runs the standalone proxies: ``synflow`` last, since it turns the
#: shared copy of the network into one that cannot be reset.
_STANDALONE_ORDER: tuple[str, ...] = ("l2_norm", "params", "flops", "zen", "synflow")


def _standalone_rank(name: str) -> int:
    return _STANDALONE_ORDER.index(name) if name in _STANDALONE_ORDER else -1


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _label(arch: Any) -> str:
    if arch is None:
        return ""
    digest = getattr(arch, "hash", None)
    return f" for architecture {digest[:12]}" if isinstance(digest, str) else f" for {arch!r}"


def _finalise(name: str, value: "float | Exception", label: str) -> float:
    """The value as a float, or NaN with a warning naming the proxy and the reason."""
    if isinstance(value, Exception):
        reason = str(value) if isinstance(value, ProxyError) else f"{type(value).__name__}: {value}"
        level = logging.INFO if isinstance(value, NotApplicable) else logging.WARNING
        report.nan(log, level, report.category(reason, name), "zero-cost proxy %r%s is NaN: %s", name, label, reason)
        return math.nan
    v = float(value)
    if not math.isfinite(v):
        report.nan(log, logging.WARNING, f"non-finite {name}", "zero-cost proxy %r%s is NaN: the value is not "
                   "finite (%r)", name, label, v)
        return math.nan
    return v


def _check_batch(x: Tensor, y: Tensor, num_classes: int) -> None:
    """Refuse a malformed mini-batch (a caller's error, unlike a proxy's failure)."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError("x and y must be torch tensors")
    if x.dim() < 2 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x must be a batch (B×...) and y B labels; got x {tuple(x.shape)}, y {tuple(y.shape)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if y.dtype.is_floating_point or (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y must hold integer labels in 0..{num_classes - 1}")


def _report(names: Sequence[str], raw: dict[str, "float | Exception"], label: str) -> dict[str, float]:
    """Each proxy's float, NaN for failures (``_finalise``); proxies cut off by the safety timeout are
    logged together, once."""
    timed_out = [n for n in names if isinstance(raw[n], ProxyTimeout)]
    if timed_out:
        report.nan(log, logging.WARNING, "timeout", "zero-cost proxies %s%s are NaN: %s", ", ".join(timed_out), label,
                   raw[timed_out[0]])
    return {n: math.nan if n in timed_out else _finalise(n, raw[n], label) for n in names}


def compute_proxies(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    num_classes: int,
    proxies: "str | Iterable[str]" = ALL,
    seed: int = 0,
    arch: Any = None,
    max_seconds: float | None = None,
    fisher: str = "feature",
) -> dict[str, float]:
    """Zero-cost proxies of ``net`` on one mini-batch ``(x, y)`` of real task data.

    ``x``: float inputs, batch first; ``y``: integer labels in ``0..num_classes-1``; the computation runs
    on ``x``'s device (the network is deep-copied there; ``net`` itself is never modified).  ``proxies``:
    names from ``ALL`` (aliases such as ``jacov`` allowed, ``"all"`` for every one); the result maps each
    canonical name, in the requested order, to a float.  ``seed`` seeds ``zen``'s Gaussian weights and
    inputs (``synflow``'s input is all ones; the other proxies use ``(x, y)``), and any stochastic layer of
    ``net`` (dropout) draws from a forked global RNG seeded with ``seed`` before each pass, so the caller's
    RNG state is untouched and results are bit-identical for identical inputs on the CPU.  ``arch``,
    optional, names the architecture in warnings and, when ``net`` is its compiled network
    (``nas.compile.compile_architecture``), gives ``flops`` in closed form.  A proxy that fails or is not
    finite is NaN, with a warning.  ``max_seconds`` (None: no limit) is a wall-clock safety net, checked
    between passes and before every module's forward: once past it, the proxies not yet finished are NaN,
    logged once with the reason ``timeout: ...``.  Size limits are checked before a network is built, by
    ``ZeroCostProxies`` (``features.zcp.guard``).  ``fisher`` picks how ``fisher`` is computed
    (``FISHER_MODES``): ``feature`` (default) or ``published`` (the published encoder's fan-in weighting;
    on an einspace network compiled with ``fuse=False``, as the published one is built).
    """
    names = resolve_proxies(proxies)
    if fisher not in FISHER_MODES:
        raise ValueError(f"fisher must be one of {', '.join(FISHER_MODES)}, got {fisher!r}")
    _check_batch(x, y, num_classes)
    deadline = _Deadline(max_seconds)

    raw: dict[str, float | Exception] = {}
    device = x.device
    cuda = device.type == "cuda"
    fork_devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.inference_mode(False), torch.random.fork_rng(devices=fork_devices, device_type="cuda" if cuda else None):
        # clones made outside inference mode can enter autograd even if the caller is in inference mode
        x = x.detach().clone()
        y = y.detach().to(device=device, dtype=torch.long).clone()
        inp = _Inputs(net, x, y, int(num_classes), int(seed), arch, _Workspace(net, device), deadline, fisher)

        def reseed() -> None:  # every pass sees the same RNG state, whichever proxies are asked for
            torch.random.default_generator.manual_seed(inp.seed)
            if cuda:
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(inp.seed)

        shared = {n for n in names if n in SHARED}
        if shared:
            reseed()
            try:
                deadline.check()
                raw.update(_shared_pass(inp, shared))
            except Exception as exc:  # noqa: BLE001 - forward failed: every shared proxy is NaN
                raw.update({n: exc for n in shared})
        for name in sorted((n for n in names if n not in SHARED), key=_standalone_rank):
            reseed()
            try:
                deadline.check()
                raw[name] = STANDALONE[name](inp)
            except Exception as exc:  # noqa: BLE001
                raw[name] = exc
    return _report(names, raw, _label(arch))
