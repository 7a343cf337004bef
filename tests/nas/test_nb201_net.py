"""The NAS-Bench-201 network compiler: the nb201 grammar's closed-form costs, held against the GRAF study's
table (every cell) and against the PyTorch modules (a sample here, every cell in the slow test)."""

from __future__ import annotations

import csv
from collections import defaultdict
from typing import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from nas.cells import from_cell_string
from nas.compile import compile_architecture
from nas.ops import DagModule
from nas.grammar.nb201 import (
    CELLS_PER_STAGE,
    OPS,
    STEM_CHANNELS,
    cell_ops,
    nb201_table_op_flops,
    parse_cell_string,
    stage_shapes,
)
from nas.sampler import Sampler
from nas.nb201_net import ResNetBasicBlock, Zero, nb201_backbone

SHAPE = (3, 32, 32)
CELL = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
#: The table's flops (MFLOPs) of the all-``none`` cell: the skeleton as the table counts it.
TABLE_SKELETON_FLOPS = 7_943_872


@pytest.fixture(scope="module")
def table() -> list[dict[str, str]]:
    from data.nb201 import PROXIES_FILE, find_data_dir, open_table

    try:
        folder = find_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 data not available: {exc}")
    with open_table(folder, PROXIES_FILE) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9445
    return rows


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(net: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``net`` (batch 1) under ``Architecture.flops``'s convention, counted on
    the modules with forward hooks, independently of the grammars' closed forms: conv 2 per multiply-add,
    norms 4 and activations 1 per element, average pooling k² per output element, one addition per element
    for every extra input of a DAG node or residual block; the linear head is not counted."""
    total = [0]
    dag_out: dict[int, dict[int, int]] = defaultdict(dict)
    handles = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += 2 * (module.in_channels // module.groups) * k * module.out_channels * output[0, 0].numel()
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.LayerNorm)):
            total[0] += 4 * output[0].numel()
        elif isinstance(module, (nn.ReLU, nn.Hardswish, nn.Mish)):
            total[0] += x[0].numel()
        elif isinstance(module, nn.AvgPool2d):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            total[0] += k * k * output[0].numel()
        elif isinstance(module, ResNetBasicBlock):
            total[0] += output[0].numel()

    for m in net.modules():
        handles.append(m.register_forward_hook(hook))
        if isinstance(m, DagModule):
            for i, op in enumerate(m.ops):
                handles.append(op.register_forward_hook(
                    lambda mod, inp, out, d=id(m), i=i: dag_out[d].__setitem__(i, out[0].numel())))
    dags = {id(m): m for m in net.modules() if isinstance(m, DagModule)}
    with torch.no_grad():
        net.eval()(x)
    for h in handles:
        h.remove()
    for d, sizes in dag_out.items():
        into: dict[int, list[int]] = defaultdict(list)
        for i, (s, t) in enumerate(dags[d].edges):
            into[t].append(sizes[i])
        total[0] += sum((len(v) - 1) * v[0] for v in into.values())
    return total[0]


def table_cells(rows: list[dict[str, str]], n: int, seed: int) -> Iterator[dict[str, str]]:
    rng = np.random.default_rng(seed)
    for i in rng.choice(len(rows), size=n, replace=False):
        yield rows[int(i)]


def test_closed_form_params_match_the_table_for_every_cell(table):
    for row in table:
        arch = from_cell_string(row["net_str"])
        total = arch.num_params + arch.head_params(10)
        assert f"{total / 1e6:.6f}" == f"{float(row['params']):.6f}", row["net_str"]


def test_compiled_networks_have_the_table_parameters(table):
    for row in table_cells(table, 50, seed=0):
        arch = from_cell_string(row["net_str"])
        net = compile_architecture(arch, 10, seed=0)
        assert n_params(net) == arch.num_params + arch.head_params(10)
        assert f"{n_params(net) / 1e6:.6f}" == f"{float(row['params']):.6f}", row["net_str"]
        assert n_params(net.backbone) == arch.num_params


def test_table_flops_increments_are_the_operations_macs_plus_relu_and_bn(table):
    """The table's ``flops`` column (MFLOPs): above the all-none cell, every cell adds exactly its 15 copies'
    operations counted as multiply-adds + 3 per output element of a conv (ReLU and BN) + 9 per element of
    a 3×3 pool (``nb201_table_op_flops``)."""
    shapes = stage_shapes(STEM_CHANNELS, 32, 32)
    for row in table:
        ops = parse_cell_string(row["net_str"])
        ours = TABLE_SKELETON_FLOPS + sum(
            CELLS_PER_STAGE * nb201_table_op_flops(op, *shape) for op in ops for shape in shapes
        )
        assert abs(ours / 1e6 - float(row["flops"])) < 1e-6, row["net_str"]


def test_network_layout_and_output():
    arch = from_cell_string(CELL)
    net = compile_architecture(arch, 10, seed=0)
    body = net.backbone
    assert isinstance(body, nn.Sequential) and len(body) == 1 + 15 + 2 + 1
    kinds = [type(m).__name__ for m in body]
    assert kinds == ["Sequential"] + ["DagModule"] * 5 + ["ResNetBasicBlock"] + ["DagModule"] * 5 + [
        "ResNetBasicBlock"] + ["DagModule"] * 5 + ["Sequential"]
    stem_conv = body[0][0]
    assert (stem_conv.in_channels, stem_conv.out_channels, stem_conv.kernel_size, stem_conv.bias) == (3, 16, (3, 3), None)
    cells = [m for m in body if isinstance(m, DagModule)]
    assert [c.ops[0][1].in_channels for c in cells] == [16] * 5 + [32] * 5 + [64] * 5  # nor_conv_3x3 on edge 1<-0
    assert isinstance(cells[0].ops[1], Zero) and isinstance(cells[0].ops[2], nn.Identity)
    pool = cells[0].ops[3]
    assert isinstance(pool, nn.AvgPool2d) and pool.count_include_pad is False and pool.stride == 1
    block = body[6]
    assert block.conv_a[1].stride == (2, 2) and isinstance(block.downsample[0], nn.AvgPool2d)
    assert block.downsample[1].kernel_size == (1, 1) and block.downsample[1].bias is None
    assert isinstance(body[-1][0], nn.BatchNorm2d) and isinstance(body[-1][1], nn.ReLU)
    x = torch.randn(2, *SHAPE)
    assert body(x).shape == (2, *arch.output_shape) == (2, 64, 8, 8)
    assert net(x).shape == (2, 10)
    assert compile_architecture(arch, 100, seed=0).head.out_features == 100


def test_cell_computes_the_node_sums():
    torch.manual_seed(0)
    ops = ("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1")
    cell = nb201_backbone(ops)[1].eval()
    x = torch.randn(1, 16, 8, 8)
    e = cell.ops
    with torch.no_grad():
        n1 = e[0](x)
        n2 = e[1](x) + e[2](n1)
        n3 = e[3](x) + e[4](n1) + e[5](n2)
        assert torch.allclose(cell(x), n3)
        pooled = nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        assert torch.allclose(e[3](x), pooled) and torch.equal(e[1](x), torch.zeros_like(x))


def test_closed_form_flops_match_the_modules():
    rng = np.random.default_rng(1)
    cells = [CELL, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    cells += ["|" + "|+|".join("|".join(f"{rng.choice(OPS)}~{i}" for i in range(n)) for n in (1, 2, 3)) + "|"
              for _ in range(4)]
    for text in cells:
        arch = from_cell_string(text)
        net = compile_architecture(arch, 10, seed=0)
        assert count_flops(net.backbone, torch.randn(1, *SHAPE)) == arch.flops, text


@pytest.mark.parametrize("shape", [(3, 16, 16), (1, 28, 28), (5, 12, 20)])
def test_other_inputs(shape):
    arch = Sampler("nb201", shape).sample(3)
    assert arch.output_shape == (64, shape[1] // 4, shape[2] // 4)
    net = compile_architecture(arch, 7, seed=0)
    assert net.backbone(torch.randn(2, *shape)).shape == (2, *arch.output_shape)
    assert n_params(net) == arch.num_params + arch.head_params(7)
    assert count_flops(net.backbone, torch.randn(1, *shape)) == arch.flops


def test_seeded_compilation_is_reproducible_and_proxies_run():
    from features.zcp import compute_proxies

    arch = from_cell_string(CELL)
    a, b = compile_architecture(arch, 10, seed=5), compile_architecture(arch, 10, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, *SHAPE, generator=g), torch.randint(0, 10, (8,), generator=g)
    values = compute_proxies(a, x, y, 10, ["params", "flops", "grad_norm", "synflow", "nwot"], arch=arch)
    assert values["params"] == arch.num_params + arch.head_params(10)
    assert all(np.isfinite(v) for v in values.values())


def test_edge_terminals_report_their_fifteen_copies():
    arch = from_cell_string(CELL)
    conv3 = arch.node_at((0,))
    assert conv3.op.name == "nor_conv_3x3" and conv3.copies == 1
    assert conv3.params == CELLS_PER_STAGE * sum(9 * c * c + 2 * c for c in (16, 32, 64))
    assert arch.node_at(()).params == arch.num_params - sum(i.params for i in arch.terminals())
    assert cell_ops(arch) == parse_cell_string(CELL)


@pytest.mark.slow
def test_every_table_cell_compiles_to_its_parameter_count(table):
    for row in table:
        arch = from_cell_string(row["net_str"])
        net = nb201_backbone(parse_cell_string(row["net_str"]))
        assert n_params(net) == arch.num_params
        assert f"{(n_params(net) + arch.head_params(10)) / 1e6:.6f}" == f"{float(row['params']):.6f}"
