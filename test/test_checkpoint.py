import pytest
import torch

from mono_depth_ros.checkpoint import ModelFileError, load_model, read_model_file, save_model
from mono_depth_ros.model import EigenDepthNet
from mono_depth_ros.profiles import Profile

TINY = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
               fine_channels=8, min_depth=0.2, max_depth=20.0)


def _net(seed=0):
    torch.manual_seed(seed)
    return EigenDepthNet(TINY).eval()


def test_roundtrip_reproduces_outputs_exactly(tmp_path):
    net = _net()
    path = save_model(net, tmp_path / "m.pt", meta={"step": 3, "note": "x"})
    loaded, info = load_model(path)
    assert loaded.profile == TINY and info["stage"] == "fine" and info["meta"]["step"] == 3
    x = torch.randn(2, 3, 120, 160)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
        assert torch.equal(net(x, stage="coarse"), loaded(x, stage="coarse"))


def test_half_storage_is_close(tmp_path):
    net = _net()
    path = save_model(net, tmp_path / "h.pt", half=True)
    loaded, _ = load_model(path)
    x = torch.randn(1, 3, 120, 160)
    with torch.no_grad():
        assert torch.allclose(net(x), loaded(x), atol=5e-2)


def test_no_silent_overwrite(tmp_path):
    net = _net()
    p = save_model(net, tmp_path / "m.pt")
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        save_model(_net(1), p)
    assert p.read_bytes() == before
    save_model(_net(1), p, overwrite=True)
    assert p.read_bytes() != before
    assert [f.name for f in tmp_path.iterdir()] == ["m.pt"]  # no temporary files left behind


def test_wrong_profile_is_a_clear_error(tmp_path):
    path = save_model(_net(), tmp_path / "m.pt")
    with pytest.raises(ModelFileError, match=r"m\.pt.*profile 'tiny'.*expected 'nyu'"):
        load_model(path, expected_profile="nyu")


def test_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="bad.pt.*corrupt"):
        load_model(bad)
    good = save_model(_net(), tmp_path / "good.pt")
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="trunc.pt"):
        load_model(trunc)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ModelFileError, match="foreign.pt.*not a mono_depth_ros model"):
        load_model(foreign)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_loading_never_executes_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    torch.save({"format": "mono_depth_ros.model", "version": 1, "profile": TINY.to_dict(), "stage": "fine",
                "state_dict": {}, "meta": Evil()}, path)
    with pytest.raises(ModelFileError):
        read_model_file(path)
    assert not (tmp_path / "pwned").exists()


def test_coarse_only_file_cannot_run_fine(tmp_path):
    path = save_model(_net(), tmp_path / "c.pt", stage="coarse")
    with pytest.raises(ModelFileError, match="only a trained coarse"):
        load_model(path, stage="fine")
    model, _ = load_model(path)
    assert model.stage == "coarse"


def test_meta_must_be_json_like(tmp_path):
    with pytest.raises(TypeError, match="JSON-like"):
        save_model(_net(), tmp_path / "m.pt", meta={"t": torch.zeros(1)})


def test_saved_files_are_readable_by_others_and_errors_never_suggest_unsafe_loading(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        p = save_model(_net(), tmp_path / "shared.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ModelFileError) as info:
        load_model(bad)
    assert "weights_only" not in str(info.value)
