"""The einspace grammar (Ericsson et al., NeurIPS 2024) as data.

Levels and options follow the published option set: sequential / branching(2,4,8) / routing / computation
modules (computation with probability ``p``, 0.32 by default, the others sharing ``1 - p`` as sequential
and routing ``(1-p)/3`` each and each branching factor ``(1-p)/9``); 4 branching functions per factor,
6 aggregations for two branches and 4 for four or eight; 14 pre-routing and 8 post-routing functions;
13 computation functions.  Terminal choices are uniform over the options valid for the incoming shapes.

Deliberate deviations from the published code:

* The branching factor is a property of the branching *module* (``branching(k)``), and the aggregation
  options are those for ``k`` branches.  The first implementation tracked it as a node attribute and
  offered 4- and 8-tensor concatenations to two branches, recording wrong widths.
* One grid rule for ``col2im``: it is valid iff the incoming token count equals ``H'·W'`` of the most recent
  ``im2col`` on the same data path, and its output is in im mode.  (The first implementation only allowed
  the im2col of the same routing module; the second labelled the output "col", which made stacked
  convolutions unreachable.)  Aggregations keep the grid only when all branches carry the same one.
* ``norm`` is ``LayerNorm`` over the feature axis in col mode (``BatchNorm2d`` over channels in im mode),
  as in the first implementation, which the transformer seeds assume; the second implementation used
  ``BatchNorm1d`` over tokens, which is the preset ``einspace-v2``.
* The sampled activation is ``relu`` as in the paper and the second implementation; the first sampled
  ``LeakyReLU(0.01)``, available here as ``leakyrelu`` with weight 0 (and sampled in ``einspace-v1``).
* ``im2col(k,s,p)`` is *sampled* (and resampled by mutation) only where ``H, W ≥ k``, as in both published
  samplers; a given tree (a seed, a parsed or archived string) may pad a smaller map (``H + 2p ≥ k``), as
  their replay does: the ResNet-18 seed convolves its 2×2 last stage with 3×3 kernels.
* ``group(k, d)`` is valid iff axis ``d`` is divisible by ``k`` (the first implementation also dropped
  every group when *any* axis was smaller than ``k``).
* Seeds need relative-width linear layers (``linear(x4)``, ``linear(/4)``, for MLP-Mixer token mixing at
  any token count); they are grammar options with weight 0, never special cases in the compiler.
* Shapes, validity, parameters and FLOPs are closed-form arithmetic: nothing runs a tensor while sampling.

Presets (``nas.grammar.registry``): ``einspace`` (the above), ``einspace-quick`` (``p = 0.9``),
``einspace-v1`` (the first implementation's option set: ``leakyrelu`` sampled instead of ``relu``, module
depth ≤ 100) and ``einspace-v2`` (``einspace`` with col-mode ``norm`` = ``BatchNorm1d`` over tokens).  The
preset name is part of an architecture's identity, so one string in two presets is two networks.  Every
preset's parser also accepts the published seed notation (aliases such as ``im2col3k1s1p``, ``linear64``,
``linear(x0.25)``; a bare layer in a module slot).

The grammar publishes its vocabulary: every option carries its GRAF label (``GRAF_LABELS``, the published
55-label order), its path-statistics group (``GRAF_GROUPS``), its FLOP-counter rule and the key of its
builder (family ``"einspace"``; the modules live in ``nas.ops``).
"""

from __future__ import annotations

import math

from nas.grammar.core import Branch, Budget, Chain, Flow, Grammar, Operation, Signal, Terminal, merge_grid

LINEAR_WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048)
IM2COL_OPTIONS = ((1, 1, 0), (1, 2, 0), (3, 1, 1), (3, 2, 1), (4, 4, 0), (8, 8, 0), (16, 16, 0))
#: Permutations including the batch axis 0, in the published order.
PERMUTATIONS = ((0, 2, 1), (0, 1, 3, 2), (0, 3, 1, 2), (0, 3, 2, 1), (0, 2, 1, 3), (0, 2, 3, 1))
BRANCHING_FACTORS = (2, 4, 8)
DEFAULT_COMPUTATION_PROB = 0.32

FAMILY = "einspace"

#: The 55 GRAF labels in the published order: the translated option names of every grammar level except
#: ``network``, in the published level order and option order, first occurrence kept.
GRAF_LABELS: tuple[str, ...] = (
    "sequential_module", "branching_module", "routing_module", "computation_module",
    "clone_tensor2", "group_dim2s1d", "group_dim2s2d", "group_dim2s3d",
    "clone_tensor4", "group_dim4s1d", "group_dim4s2d", "group_dim4s3d",
    "clone_tensor8", "group_dim8s1d", "group_dim8s2d", "group_dim8s3d",
    "add_tensors", "cat_tensors1d2t", "cat_tensors2d2t", "cat_tensors3d2t", "dot_product", "scaled_dot_product",
    "cat_tensors1d4t", "cat_tensors2d4t", "cat_tensors3d4t",
    "cat_tensors1d8t", "cat_tensors2d8t", "cat_tensors3d8t",
    "identity", "permute21", "permute132", "permute312", "permute321", "permute213", "permute231",
    "im2col1k1s0p", "im2col1k2s0p", "im2col3k1s1p", "im2col3k2s1p", "im2col4k4s0p", "im2col8k8s0p", "im2col16k16s0p",
    "col2im",
    "linear16", "linear32", "linear64", "linear128", "linear256", "linear512", "linear1024", "linear2048",
    "norm", "leakyrelu", "softmax", "learnable_positional_encoding",
)
#: Path-statistics groups: ``im2col`` (``im2col(…)`` and ``col2im``), ``permute``, ``aggregation`` (``add``,
#: ``cat``, ``dot_product``), ``clone``, ``group_dim``, ``linear`` (every width, seed-only ones included) and
#: ``other`` (every other op, and names the grammar does not know).  Unlike the published groups,
#: ``identity`` belongs to ``other``, so that every op is in exactly one group.
GRAF_GROUPS: tuple[str, ...] = ("im2col", "permute", "aggregation", "clone", "group_dim", "linear", "other")


class _Layer(Terminal):
    """An einspace terminal: built by the ``"einspace"`` builder family; in GRAF group ``other`` and free
    for a matrix-product FLOP counter unless a subclass says otherwise.  Its GRAF label is the first
    implementation's name of the op, which the parser also accepts (``im2col3k1s1p``, ``linear64``,
    ``permute21``: the notation of the published seed strings) unless ``label_is_alias`` is off."""

    family = FAMILY
    flop_rule: str | None = "free"
    group = "other"
    label_is_alias = True

    def __init__(self, name: str, level: str, weight: float = 1.0, *, label: str | None = None) -> None:
        super().__init__(name, level, weight)
        self.labelled(name if label is None else label, self.group)
        if self.label_is_alias and label is not None and label != name:
            self.aliases = (label,)


# --------------------------------------------------------------------------------------------------
# Computation functions (one-to-one)
# --------------------------------------------------------------------------------------------------


class Identity(_Layer):
    layer = "identity"

    def infer(self, flow: Flow) -> Flow | None:
        return flow if len(flow) == 1 else None


class Linear(_Layer):
    """``nn.Linear`` on the last axis, to a fixed width (``linear(64)``) or a relative one (``linear(x4)``,
    ``linear(/4)``, which have no GRAF label)."""

    layer = "linear"
    group = "linear"
    flop_rule = "linear"

    def __init__(self, level: str, width: int | None = None, *, times: int = 1, divide: int = 1, weight: float = 1.0):
        if width is not None:
            name = f"linear({width})"
        elif times != 1:
            name = f"linear(x{times})"
        else:
            name = f"linear(/{divide})"
        super().__init__(name, level, weight, label=None if width is None else f"linear{width}")
        if width is None:
            self.graf_label = None
            # the second implementation writes a ratio (``linear(x0.25)``, ``linear_x(4)``), the first
            # ``linear_x4`` / ``linear_4th``
            ratio = f"{times / divide:g}"
            self.aliases = tuple(a for a in (f"linear(x{ratio})", f"linear_x({ratio})") if a != name)
            if (times, divide) in ((4, 1), (1, 4)):
                self.aliases += ("linear_x4",) if times == 4 else ("linear_4th",)
        self.width, self.times, self.divide = width, times, divide

    def out_features(self, in_features: int) -> int | None:
        if self.width is not None:
            return self.width
        if in_features % self.divide:
            return None
        return in_features * self.times // self.divide

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 1:
            return None
        (x,) = flow
        out = self.out_features(x.shape[-1])
        return None if out is None else (Signal(x.shape[:-1] + (out,), x.grid),)

    def params(self, inp: Flow, out: Flow) -> int:
        return inp[0].shape[-1] * out[0].shape[-1] + out[0].shape[-1]

    def flops(self, inp: Flow, out: Flow) -> int:
        rows = math.prod(inp[0].shape[:-1])
        return 2 * rows * inp[0].shape[-1] * out[0].shape[-1]


#: What ``norm`` is in col mode: ``"layer"`` (``LayerNorm`` over the feature axis, the first implementation)
#: or ``"batch"`` (``BatchNorm1d`` over the token axis, the second implementation).
COL_NORMS = ("layer", "batch")


class Norm(_Layer):
    """``BatchNorm2d`` over axis 1 (channels) in im mode; in col mode ``LayerNorm`` over the feature axis
    (``col="layer"``) or ``BatchNorm1d`` with the tokens as channels (``col="batch"``)."""

    layer = "norm"

    def __init__(self, name: str, level: str, weight: float = 1.0, *, col: str = "layer") -> None:
        if col not in COL_NORMS:
            raise ValueError(f"col-mode norm must be one of {', '.join(COL_NORMS)}, got {col!r}")
        super().__init__(name, level, weight)
        self.col = col

    def infer(self, flow: Flow) -> Flow | None:
        return flow if len(flow) == 1 else None

    def _features(self, x: Signal) -> int:
        return x.shape[0] if x.mode == "im" or self.col == "batch" else x.shape[-1]

    def params(self, inp: Flow, out: Flow) -> int:
        return 2 * self._features(inp[0])

    def flops(self, inp: Flow, out: Flow) -> int:
        return 4 * inp[0].numel


class Activation(_Layer):
    """Element-wise activation (``relu``, ``leakyrelu``) or ``softmax`` over the last axis.  GRAF counts
    ``relu`` under the published label ``leakyrelu``."""

    layer = "activation"
    label_is_alias = False  # ``relu`` is counted as ``leakyrelu``, which is another op's name

    def __init__(self, name: str, level: str, weight: float = 1.0) -> None:
        super().__init__(name, level, weight, label="leakyrelu" if name == "relu" else name)

    def infer(self, flow: Flow) -> Flow | None:
        return flow if len(flow) == 1 else None

    def flops(self, inp: Flow, out: Flow) -> int:
        return (3 if self.name == "softmax" else 1) * inp[0].numel


class PositionalEncoding(_Layer):
    """Adds a learnable tensor of the input's shape (initialised N(0, 1))."""

    layer = "pos_enc"

    def __init__(self, name: str, level: str, weight: float = 1.0) -> None:
        super().__init__(name, level, weight, label="learnable_positional_encoding")

    def infer(self, flow: Flow) -> Flow | None:
        return flow if len(flow) == 1 else None

    def params(self, inp: Flow, out: Flow) -> int:
        return inp[0].numel

    def flops(self, inp: Flow, out: Flow) -> int:
        return inp[0].numel


# --------------------------------------------------------------------------------------------------
# Routing functions
# --------------------------------------------------------------------------------------------------


class Permute(_Layer):
    """Reorders the non-batch axes; ``dims`` includes the batch axis 0 as in the published names."""

    layer = "perm"
    group = "permute"

    def __init__(self, level: str, dims: tuple[int, ...], weight: float = 1.0):
        super().__init__("perm(" + ",".join(map(str, dims)) + ")", level, weight,
                         label="permute" + "".join(map(str, dims[1:])))
        self.dims = dims

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 1 or len(flow[0].shape) + 1 != len(self.dims):
            return None
        x = flow[0]
        return (Signal(tuple(x.shape[d - 1] for d in self.dims[1:]), x.grid),)


class Im2Col(_Layer):
    """Unfold ``C×H×W`` into ``(H'·W')×(C·k²)`` tokens (channel-major features, like a conv weight) and
    remember the grid ``(H', W')`` for a later ``col2im``."""

    layer = "im2col"
    group = "im2col"

    def __init__(self, level: str, kernel: int, stride: int, padding: int, weight: float = 1.0):
        super().__init__(f"im2col({kernel},{stride},{padding})", level, weight,
                         label=f"im2col{kernel}k{stride}s{padding}p")
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def grid(self, h: int, w: int) -> tuple[int, int]:
        k, s, p = self.kernel, self.stride, self.padding
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 1 or flow[0].mode != "im":
            return None
        c, h, w = flow[0].shape
        if h + 2 * self.padding < self.kernel or w + 2 * self.padding < self.kernel:
            return None
        gh, gw = self.grid(h, w)
        return (Signal((gh * gw, c * self.kernel * self.kernel), (gh, gw)),)

    def samplable(self, flow: Flow) -> bool:
        """Sampling and mutation choose it only for ``H, W ≥ k``, as both published samplers do; a given
        tree (a seed, a parsed string) may pad a smaller map (``H + 2p ≥ k``), as their replay does."""
        _, h, w = flow[0].shape
        return h >= self.kernel and w >= self.kernel


class Col2Im(_Layer):
    """Fold ``(H'·W')×D`` tokens back into a ``D×H'×W'`` image on the grid of the most recent im2col."""

    layer = "col2im"
    group = "im2col"

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 1:
            return None
        x = flow[0]
        if x.mode != "col" or x.grid is None or x.shape[0] != x.grid[0] * x.grid[1]:
            return None
        return (Signal((x.shape[1], *x.grid), x.grid),)


# --------------------------------------------------------------------------------------------------
# Branching functions (one to k) and aggregation functions (k to one)
# --------------------------------------------------------------------------------------------------


class Clone(_Layer):
    one_to_one = False
    layer = "clone"
    group = "clone"

    def __init__(self, level: str, k: int, weight: float = 1.0):
        super().__init__(f"clone({k})", level, weight, label=f"clone_tensor{k}")
        self.k = k

    def infer(self, flow: Flow) -> Flow | None:
        return flow * self.k if len(flow) == 1 else None


class Group(_Layer):
    """Split into ``k`` equal contiguous chunks along axis ``dim`` (counting the batch axis as 0)."""

    one_to_one = False
    layer = "group"
    group = "group_dim"

    def __init__(self, level: str, k: int, dim: int, weight: float = 1.0):
        super().__init__(f"group({k},{dim})", level, weight, label=f"group_dim{k}s{dim}d")
        self.k, self.dim = k, dim

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 1:
            return None
        x = flow[0]
        if self.dim > len(x.shape) or x.shape[self.dim - 1] % self.k:
            return None
        shape = list(x.shape)
        shape[self.dim - 1] //= self.k
        return (Signal(tuple(shape), x.grid),) * self.k


class Add(_Layer):
    one_to_one = False
    layer = "add"
    group = "aggregation"

    def __init__(self, level: str, k: int, weight: float = 1.0):
        super().__init__(f"add({k})", level, weight, label="add_tensors")
        self.k = k

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != self.k or any(s.shape != flow[0].shape for s in flow):
            return None
        return (Signal(flow[0].shape, merge_grid(flow)),)

    def flops(self, inp: Flow, out: Flow) -> int:
        return (self.k - 1) * out[0].numel


class Cat(_Layer):
    one_to_one = False
    layer = "cat"
    group = "aggregation"

    def __init__(self, level: str, k: int, dim: int, weight: float = 1.0):
        super().__init__(f"cat({k},{dim})", level, weight, label=f"cat_tensors{dim}d{k}t")
        self.k, self.dim = k, dim

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != self.k:
            return None
        first = flow[0].shape
        axis = self.dim - 1
        if axis >= len(first):
            return None
        for s in flow[1:]:
            if len(s.shape) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s.shape, first)) if i != axis):
                return None
        shape = list(first)
        shape[axis] = sum(s.shape[axis] for s in flow)
        return (Signal(tuple(shape), merge_grid(flow)),)


class DotProduct(_Layer):
    """Batched matrix product of the two branches (``a @ b``), optionally scaled by ``1/sqrt(d)`` with ``d``
    the last axis of ``a``.  col: ``S×D @ D×E -> S×E``; im: ``C×H×W @ C×W×V -> C×H×V``."""

    one_to_one = False
    layer = "dot_product"
    group = "aggregation"
    flop_rule = "product"

    def __init__(self, level: str, scaled: bool, weight: float = 1.0):
        super().__init__("dot_product(scaled)" if scaled else "dot_product", level, weight,
                         label="scaled_dot_product" if scaled else "dot_product")
        self.scaled = scaled

    def infer(self, flow: Flow) -> Flow | None:
        if len(flow) != 2:
            return None
        a, b = flow[0].shape, flow[1].shape
        if len(a) != len(b) or a[-1] != b[-2] or a[:-2] != b[:-2]:
            return None
        return (Signal(a[:-1] + (b[-1],), merge_grid(flow)),)

    def flops(self, inp: Flow, out: Flow) -> int:
        a = inp[0].shape
        return 2 * math.prod(a) * out[0].shape[-1] + (out[0].numel if self.scaled else 0)


# --------------------------------------------------------------------------------------------------
# The grammar
# --------------------------------------------------------------------------------------------------


def _module_options(level: str, p: float, with_computation: bool) -> list[Operation]:
    """Module choices: computation ``p``; sequential and routing ``(1-p)/3``; each branching(k) ``(1-p)/9``."""
    rest = (1.0 - p) if with_computation else 1.0
    ops: list[Operation] = [Chain("sequential", level, ("module", "module"), "()", rest / 3).labelled("sequential_module")]
    for k in BRANCHING_FACTORS:
        ops.append(
            Branch(
                f"branching({k})", level, f"branching_fn_{k}", "module", f"aggregation_fn_{k}",
                fanout=k, replicate=k > 2, brackets="{}", weight=rest / 9,
            ).labelled("branching_module")
        )
    ops.append(Chain("routing", level, ("prerouting_fn", "module", "postrouting_fn"), "[]", rest / 3).labelled("routing_module"))
    if with_computation:
        computation = Chain("computation", level, ("computation_fn",), "<>", p).labelled("computation_module")
        computation.bare_child = True  # published seed strings write e.g. a bare ``identity`` shortcut
        ops.append(computation)
    return ops


#: The activation sampled by each implementation: the first samples ``LeakyReLU(0.01)``, the second (and
#: the paper) ``relu``.
ACTIVATIONS = ("relu", "leakyrelu")
#: Module depth limit of the first implementation (at depth 100 a module must be a computation module,
#: whose layer is one level deeper): a derivation-tree depth of 101 here.
V1_MAX_DEPTH = 101


def _computation_options(lv: str, col_norm: str, activation: str) -> list[Operation]:
    """The 13 sampled computation functions, then the weight-0 ones that seeds need."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    ops: list[Operation] = [Identity("identity", lv)] + [Linear(lv, w) for w in LINEAR_WIDTHS]
    ops += [Norm("norm", lv, col=col_norm), Activation(activation, lv), Activation("softmax", lv),
            PositionalEncoding("pos_enc", lv)]
    if activation == "relu":  # legal but never sampled: for seeds of the first implementation
        ops.append(Activation("leakyrelu", lv, weight=0.0))
    # legal but never sampled: MLP-Mixer token mixing at any token count
    return ops + [Linear(lv, times=4, weight=0.0), Linear(lv, divide=4, weight=0.0)]


def build_einspace(
    computation_prob: float = DEFAULT_COMPUTATION_PROB,
    name: str = "einspace",
    *,
    col_norm: str = "layer",
    activation: str = "relu",
    default_budget: Budget | None = None,
    description: str | None = None,
) -> Grammar:
    """The einspace grammar with computation-module probability ``computation_prob``; ``col_norm`` is what
    ``norm`` is in col mode (``COL_NORMS``), ``activation`` the sampled activation (``ACTIVATIONS``; with
    ``relu``, ``leakyrelu`` stays a weight-0 option).  Both change the network a string stands for, so
    every combination is a preset of its own name (the name is part of an architecture's identity)."""
    if not 0.0 < computation_prob < 1.0:
        raise ValueError(f"computation_prob must be in (0, 1), got {computation_prob}")
    levels: dict[str, list] = {
        "network": _module_options("network", computation_prob, with_computation=False),
        "module": _module_options("module", computation_prob, with_computation=True),
    }
    for k in BRANCHING_FACTORS:
        lv = f"branching_fn_{k}"
        levels[lv] = [Clone(lv, k)] + [Group(lv, k, d) for d in (1, 2, 3)]
        lv = f"aggregation_fn_{k}"
        levels[lv] = [Add(lv, k)] + [Cat(lv, k, d) for d in (1, 2, 3)]
        if k == 2:
            levels[lv] += [DotProduct(lv, scaled=False), DotProduct(lv, scaled=True)]
    lv = "prerouting_fn"
    levels[lv] = [Identity("identity", lv)] + [Permute(lv, d) for d in PERMUTATIONS]
    levels[lv] += [Im2Col(lv, *kso) for kso in IM2COL_OPTIONS]
    lv = "postrouting_fn"
    levels[lv] = [Identity("identity", lv)] + [Permute(lv, d) for d in PERMUTATIONS] + [Col2Im("col2im", lv)]
    levels["computation_fn"] = _computation_options("computation_fn", col_norm, activation)
    if description is None:
        description = f"einspace (computation-module probability {computation_prob})"
    return Grammar(
        name,
        "network",
        levels,
        description=description,
        default_budget=default_budget,
        graf_labels=GRAF_LABELS,
        graf_groups=GRAF_GROUPS,
        graf_other_group="other",
    )


def build_einspace_v1() -> Grammar:
    """``einspace-v1``: the option set of the first implementation (the NeurIPS paper's code): ``leakyrelu``
    sampled (no ``relu``), ``norm`` = ``LayerNorm`` in col mode, module depth ≤ 100.  Its four module types
    keep their probabilities (branching ``(1-p)/3``, split evenly over the factors 2/4/8, which is the
    first implementation's distribution whenever all 12 branching functions are valid)."""
    return build_einspace(
        name="einspace-v1",
        activation="leakyrelu",
        default_budget=Budget(max_depth=V1_MAX_DEPTH),
        description="einspace, first implementation's option set (leakyrelu, LayerNorm in col mode, module depth ≤ 100)",
    )


def build_einspace_v2() -> Grammar:
    """``einspace-v2``: today's ``einspace`` with the second implementation's col-mode ``norm``
    (``BatchNorm1d`` over the token axis), so its published strings stand for its networks."""
    return build_einspace(
        name="einspace-v2",
        col_norm="batch",
        description="einspace, second implementation's networks (BatchNorm1d over tokens for col-mode norm)",
    )
