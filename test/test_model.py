import numpy as np
import pytest
import torch

from mono_depth_ros.model import EigenDepthNet, count_parameters, gflops, iter_layer_shapes, summary
from mono_depth_ros.profiles import PROFILES, Profile, get_profile

# PAPER.md's table (W x H); KITTI C2 is 35x10 by the arithmetic (paper: 35x9), see profiles.py.
PAPER = {
    "nyu": {"input": (304, 228), "C1": (37, 27), "C2": (18, 13), "C5": (8, 6), "C7": (74, 55), "F4": (74, 55)},
    "kitti": {"input": (576, 172), "C1": (71, 20), "C2": (35, 10), "C5": (17, 4), "C7": (142, 27), "F4": (142, 27)},
}


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {name: EigenDepthNet(name).eval() for name in ("nyu", "kitti")}


@pytest.mark.parametrize("name", ["nyu", "kitti"])
def test_layer_sizes_match_paper(name):
    sizes = get_profile(name).layer_sizes()
    for layer, wh in PAPER[name].items():
        assert sizes[layer] == wh, (layer, sizes[layer], wh)


@pytest.mark.parametrize("name", ["nyu", "kitti"])
def test_measured_shapes_match_derived(nets, name):
    net = nets[name]
    p = net.profile
    shapes = dict(iter_layer_shapes(net))
    s = p.layer_sizes()
    # C3..C5, F1 pre-pool, F3/F4 as measured by hooks
    for layer in ("C3", "C4", "C5"):
        assert shapes[layer][2:] == (s[layer][1], s[layer][0])
    assert shapes["C6"] == (1, p.fc_hidden)
    assert shapes["C7"] == (1, 1, p.output_h, p.output_w)
    assert shapes["F4"] == (1, 1, p.output_h, p.output_w)
    x = torch.zeros(1, 3, p.input_h, p.input_w)
    with torch.no_grad():
        assert tuple(net.coarse.features(x).shape) == (1, p.coarse_channels[4], s["C5"][1], s["C5"][0])


@pytest.mark.parametrize("name", ["nyu", "kitti"])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("stage", ["coarse", "fine"])
def test_output_shapes(nets, name, batch, stage):
    p = get_profile(name)
    x = torch.randn(batch, 3, p.input_h, p.input_w)
    with torch.no_grad():
        y = nets[name](x, stage=stage)
    assert tuple(y.shape) == (batch, 1, p.output_h, p.output_w)
    assert torch.isfinite(y).all()


def test_parameter_counts(nets):
    n_nyu = count_parameters(nets["nyu"]) / 1e6
    n_kitti = count_parameters(nets["kitti"]) / 1e6
    assert 69 < n_nyu < 73, n_nyu      # paper: about 71 M
    assert 88 < n_kitti < 94, n_kitti  # paper: about 91 M
    assert 3.5 < gflops("nyu") < 5.0   # the reference network: 4.1 GFLOP


def test_wrong_input_size_is_a_clear_error(nets):
    with pytest.raises(ValueError, match="expected input"):
        nets["nyu"](torch.zeros(1, 3, 100, 100))


def test_relu_and_linear_layers():
    # C7 and F4 are linear: a negative log depth must be reachable (no ReLU at the output).
    torch.manual_seed(1)
    net = EigenDepthNet("nyu").eval()
    with torch.no_grad():
        net.fine.f4.bias.fill_(-5.0)
        net.coarse.c7.bias.fill_(-5.0)
        p = net.profile
        x = torch.randn(1, 3, p.input_h, p.input_w)
        assert (net(x, stage="coarse") < 0).any()
        assert (net(x, stage="fine") < 0).any()
    # Only one dropout, after C6.
    drops = [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 1 and drops[0] is net.coarse.dropout
    # Hidden conv layers are followed by ReLU: C5's features are non-negative.
    with torch.no_grad():
        assert (net.coarse.features(x) >= 0).all()


def test_freeze_coarse_keeps_weights_bit_identical():
    torch.manual_seed(0)
    p = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
                fine_channels=8)
    net = EigenDepthNet(p, stage="fine")
    net.freeze_coarse()
    net.train()
    assert not net.coarse.training and net.fine.training
    before = {k: v.clone() for k, v in net.coarse.state_dict().items()}
    opt = torch.optim.SGD(net.param_groups("fine"), momentum=0.9)
    x = torch.randn(2, 3, 120, 160)
    target = torch.randn(2, 1, p.output_h, p.output_w)
    for _ in range(3):
        opt.zero_grad()
        loss = ((net(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
    for k, v in net.coarse.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(net.fine.f3.weight, EigenDepthNet(p).fine.f3.weight)
    assert all(q.grad is None for q in net.coarse.parameters())


def test_param_groups_paper_learning_rates():
    net = EigenDepthNet("nyu")
    coarse = {g["name"]: g["lr"] for g in net.param_groups("coarse")}
    fine = {g["name"]: g["lr"] for g in net.param_groups("fine")}
    assert coarse == {"conv": 1e-3, "fc": 0.1}
    assert fine == {"f1": 1e-3, "f3": 1e-2, "f4": 1e-3}
    n_coarse = sum(q.numel() for g in net.param_groups("coarse") for q in g["params"])
    assert n_coarse == count_parameters(net.coarse)


def test_alexnet_weights_load_into_c1_c5():
    net = EigenDepthNet("nyu")
    sd = {"features.0.weight": torch.randn(96, 3, 11, 11), "features.0.bias": torch.randn(96),
          "features.10.weight": torch.randn(256, 384, 3, 3), "classifier.1.weight": torch.randn(4096, 9216)}
    loaded = net.load_alexnet_conv(sd)
    assert loaded == ["c1.weight", "c1.bias", "c5.weight"]
    assert torch.equal(net.coarse.c1.weight, sd["features.0.weight"])
    tv_c1 = {"features.0.weight": torch.randn(64, 3, 11, 11)}  # torchvision AlexNet has 64 channels
    with pytest.raises(ValueError, match="shape"):
        net.load_alexnet_conv(tv_c1)
    net.load_alexnet_conv(tv_c1, strict_shapes=False)
    assert torch.equal(net.coarse.c1.weight[:64], tv_c1["features.0.weight"])


def test_profile_roundtrip_and_summary():
    for p in PROFILES.values():
        assert Profile.from_dict(p.to_dict()) == p
    text = summary(EigenDepthNet("kitti"))
    assert "142 x 27" in text and "17 x 4" in text
    with pytest.raises(KeyError, match="unknown profile"):
        get_profile("nope")
    with pytest.raises(ValueError, match="too small"):
        Profile(name="x", input_w=40, input_h=30)
