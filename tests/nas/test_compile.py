"""Compiler: fused convolutions equal the literal im2col -> linear -> col2im, seeded init, heads."""

import pytest
import torch
from torch import nn

from nas.architecture import Architecture
from nas.compile import build_backbone, compile_architecture
from nas.ops import Chain, Col2Im, Im2Col
from nas.seeds import get_seed

CONVS = (
    "sequential(sequential(routing[im2col(3,2,1), computation<linear(16)>, col2im], computation<norm>), "
    "branching(2){clone(2), sequential(computation<relu>, routing[im2col(3,1,1), computation<linear(32)>, col2im]), "
    "routing[im2col(1,1,0), routing[identity, computation<linear(16)>, identity], col2im], cat(2,1)})"
)


def conv_linears(model: nn.Module) -> list[nn.Linear]:
    """Linear layers of unfused ``Im2Col, Linear, Col2Im`` runs, in construction order."""
    found = []
    for m in model.modules():
        if isinstance(m, Chain):
            layers = list(m.layers)
            for a, b, c in zip(layers, layers[1:], layers[2:]):
                if isinstance(a, Im2Col) and isinstance(b, nn.Linear) and isinstance(c, Col2Im):
                    found.append(b)
    return found


def copy_linears_into_convs(unfused: nn.Module, fused: nn.Module) -> int:
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    linears = conv_linears(unfused)
    assert len(convs) == len(linears) > 0
    with torch.no_grad():
        for conv, lin in zip(convs, linears):
            conv.weight.copy_(lin.weight.view_as(conv.weight))
            conv.bias.copy_(lin.bias)
    return len(convs)


@pytest.mark.parametrize("text, shape", [(CONVS, (3, 16, 16)), ("resnet18", (3, 32, 32))])
def test_fused_and_unfused_give_the_same_outputs_with_the_same_weights(text, shape):
    arch = get_seed(text, shape) if text == "resnet18" else Architecture.from_string(text, shape)
    unfused = build_backbone(arch, fuse=False)
    fused = build_backbone(arch, fuse=True)
    # Give the fused model every non-conv weight of the unfused one, and the convs the linears' weights.
    torch.manual_seed(0)
    for p in unfused.parameters():
        p.data.normal_(0, 0.1)
    other = {k: v for k, v in unfused.state_dict().items()}
    n = copy_linears_into_convs(unfused, fused)
    fused_keys = [k for k in fused.state_dict() if not any(k.startswith(p) for p in _conv_prefixes(fused))]
    unfused_keys = [k for k in other if not any(k.startswith(p) for p in _linear_prefixes(unfused))]
    assert len(fused_keys) == len(unfused_keys)
    fused.load_state_dict({**fused.state_dict(), **{fk: other[uk] for fk, uk in zip(fused_keys, unfused_keys)}})
    assert sum(isinstance(m, Im2Col) for m in fused.modules()) < sum(isinstance(m, Im2Col) for m in unfused.modules())
    unfused.eval(), fused.eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), unfused(x), rtol=1e-4, atol=1e-5)
    assert n >= 3


def _conv_prefixes(model):
    return [name + "." for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _linear_prefixes(model):
    ids = {id(m) for m in conv_linears(model)}
    return [name + "." for name, m in model.named_modules() if id(m) in ids]


def test_fusion_turns_every_im2col_linear_col2im_run_into_conv2d():
    arch = Architecture.from_string(CONVS, (3, 16, 16))
    fused = build_backbone(arch)
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (3, 16, (3, 3), (2, 2), (1, 1)),
        (16, 32, (3, 3), (1, 1), (1, 1)),
        (16, 16, (1, 1), (1, 1), (0, 0)),  # written with a nested identity routing: still a 1×1 conv
    ]
    assert not any(isinstance(m, (Im2Col, Col2Im)) for m in fused.modules())
    # an activation between the linear and col2im is not a convolution: it runs literally
    literal = Architecture.from_string(
        "routing[im2col(3,1,1), sequential(computation<linear(16)>, computation<relu>), col2im]", (3, 8, 8)
    )
    assert not any(isinstance(m, nn.Conv2d) for m in build_backbone(literal).modules())


def test_fused_and_unfused_builds_agree_for_the_same_seed():
    arch = Architecture.from_string(CONVS, (3, 16, 16))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        a = compile_architecture(arch, 7, seed=11, fuse=True).eval()(x)
        b = compile_architecture(arch, 7, seed=11, fuse=False).eval()(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_seeded_compilation_is_deterministic_and_leaves_global_rng_alone():
    arch = get_seed("wrn16_4", (3, 16, 16))
    state = torch.get_rng_state()
    a = compile_architecture(arch, 10, seed=3).state_dict()
    b = compile_architecture(arch, 10, seed=3).state_dict()
    c = compile_architecture(arch, 10, seed=4).state_dict()
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("pool, width", [("features", 16), ("tokens", 64)])
def test_col_heads(pool, width):
    arch = Architecture.from_string("routing[identity, computation<linear(64)>, identity]", (16, 32))
    net = compile_architecture(arch, 5, col_pool=pool)
    assert net.head.in_features == width
    assert net(torch.randn(2, 16, 32)).shape == (2, 5)
    assert sum(p.numel() for p in net.parameters()) == arch.num_params + arch.head_params(5, pool)


def test_image_head_and_bad_arguments():
    arch = Architecture.from_string("routing[identity, computation<relu>, identity]", (3, 8, 8))
    net = compile_architecture(arch, 4)
    assert net.head.in_features == 3 and net(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    with pytest.raises(ValueError, match="num_classes"):
        compile_architecture(arch, 0)
    with pytest.raises(ValueError, match="col_pool"):
        compile_architecture(arch, 3, col_pool="max")


def test_seeded_builds_in_threads_are_identical_to_serial_ones():
    """Two threads compiling with seeds at once must not interleave their weight draws."""
    from concurrent.futures import ThreadPoolExecutor

    from nas.grammar import Budget
    from nas.sampler import Sampler

    archs = [Sampler("einspace", (3, 8, 8), Budget(max_params=50_000)).sample(i) for i in range(8)]

    def weights(a):
        return [p.detach().clone() for p in compile_architecture(a, 4, seed=7).parameters()]

    serial = [weights(a) for a in archs]
    for _ in range(3):
        with ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(weights, archs))
        for s, t in zip(serial, threaded):
            assert len(s) == len(t) and all(torch.equal(x, y) for x, y in zip(s, t))


def test_image_norm_is_a_batchnorm_that_makes_strided_inputs_contiguous():
    """Col2Im leaves a channels-last layout; the norm copies it to contiguous memory first (the CPU
    channels-last BatchNorm backward is far slower), with the same outputs and gradients as on a copy."""
    from nas.ops import BatchNorm2d

    arch = Architecture.from_string(
        "sequential(routing[im2col(1,1,0), computation<linear(16)>, col2im], computation<norm>)", (3, 6, 6))
    net = compile_architecture(arch, 3, seed=0, fuse=False)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 1 and isinstance(norms[0], BatchNorm2d)

    bn = BatchNorm2d(4)
    base = torch.randn(2, 5, 6, 4, generator=torch.Generator().manual_seed(0))
    strided = base.permute(0, 3, 1, 2).requires_grad_(True)  # 2×4×5×6, channels last
    dense = strided.detach().contiguous().requires_grad_(True)
    assert not strided.is_contiguous()
    out_s, out_d = bn(strided), bn(dense)
    torch.testing.assert_close(out_s, out_d)
    weights = torch.randn(out_d.shape, generator=torch.Generator().manual_seed(1))
    (g_s,) = torch.autograd.grad((out_s * weights).sum(), strided)
    (g_d,) = torch.autograd.grad((out_d * weights).sum(), dense)
    torch.testing.assert_close(g_s, g_d)
