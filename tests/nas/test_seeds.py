"""Seeds are legal derivations that build and run; ResNet-18 matches an independent implementation."""

import pytest
import torch
from torch import nn

from nas.architecture import Architecture
from nas.compile import compile_architecture
from nas.seeds import get_seed, seed_names

SHAPES = [(3, 32, 32), (1, 24, 24), (3, 64, 64), (12, 8, 8), (64, 32)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_meaningful_seed_builds_and_runs(shape):
    names = seed_names(shape)
    sequence_seeds = ["vit", "mlp_mixer", "vit_v1", "mlp_mixer_v1"]
    image_seeds = ["resnet18", "wrn16_4", "vit", "mlp_mixer", "resnet18_v1", "wrn16_4_v1", "vit_v1", "mlp_mixer_v1"]
    assert names == (image_seeds if len(shape) == 3 else sequence_seeds)
    for name in names:
        arch = get_seed(name, shape)
        net = compile_architecture(arch, 10, seed=0)
        assert sum(p.numel() for p in net.backbone.parameters()) == arch.num_params
        with torch.no_grad():
            assert tuple(net.backbone(torch.randn(2, *shape)).shape[1:]) == arch.output_shape
            assert net(torch.randn(2, *shape)).shape == (2, 10)
        # seeds are ordinary architectures: their strings round-trip through the parser
        assert Architecture.from_string(arch.to_string(), shape) == arch
        assert Architecture.from_string(arch.long_string(), shape) == arch


def test_resnets_need_images():
    with pytest.raises(ValueError, match="needs an image input"):
        get_seed("resnet18", (64, 32))
    with pytest.raises(KeyError, match="unknown seed"):
        get_seed("alexnet")


def test_seed_sizes_match_the_published_second_implementation():
    # the einspace paper's WRN-16-4 is 194 nodes, 2,131 / 5,183 characters (compact / long);
    # the 4-layer ViT 208 nodes, 2,440 / 5,619, both on 3×32×32.
    wrn, vit = get_seed("wrn16_4"), get_seed("vit")
    assert (wrn.num_nodes, len(wrn.to_string()), len(wrn.long_string())) == (194, 2131, 5183)
    assert (vit.num_nodes, len(vit.to_string()), len(vit.long_string())) == (208, 2440, 5619)
    assert wrn.output_shape == (256, 8, 8) and abs(wrn.num_params - 2.75e6) < 0.01e6


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = None
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, 0), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.short is None else self.short(x)))


class ResNet18(nn.Module):
    """Written independently of the grammar: strided-conv stem, biased convs, 4 stages × 2 blocks."""

    def __init__(self, c_in, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c_in, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 64, 3, 2, 1))
        blocks, c = [], 64
        for i, w in enumerate((64, 128, 256, 512)):
            blocks += [BasicBlock(c, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("shape, classes", [((3, 32, 32), 10), ((1, 24, 24), 20), ((12, 8, 8), 3)])
def test_resnet18_parameter_count_matches_an_independent_implementation(shape, classes):
    reference = ResNet18(shape[0], classes)
    expected = sum(p.numel() for p in reference.parameters())
    arch = get_seed("resnet18", shape)
    assert arch.num_params + arch.head_params(classes) == expected
    net = compile_architecture(arch, classes)
    assert sum(p.numel() for p in net.parameters()) == expected
    with torch.no_grad():
        assert reference(torch.randn(2, *shape)).shape == net(torch.randn(2, *shape)).shape
