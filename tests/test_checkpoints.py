"""redestyle.checkpoints: registry, resolution, safe loading, strict loads, atomic writes."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import parity_dir

from redestyle import checkpoints as ckpt
from redestyle.checkpoints import (
    CheckpointMismatchError,
    CorruptCheckpointError,
    MissingWeightsError,
)

# ---------------------------------------------------------------------------------------------
# helpers


class Tiny(torch.nn.Module):
    """A small module with a parameter, a nested parameter and a buffer."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.lin = torch.nn.Linear(3, width)
        self.head = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(width, 2))
        self.up = torch.nn.Module()
        self.up.register_buffer("kernel", torch.arange(4.0))  # like rosinality's Upsample.kernel


def _seeded_state(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in module.state_dict().items()}


def _meta_state(manifest: Path) -> dict[str, torch.Tensor]:
    """Shapes of every official key (meta tensors: no memory) from a parity manifest."""
    entries = json.loads(manifest.read_text())
    entries = entries["entries"] if isinstance(entries, dict) else entries
    return {e["key"]: torch.empty(e["shape"], device="meta") for e in entries}


# ---------------------------------------------------------------------------------------------
# registry and resolve


def test_registry_covers_the_files_the_design_names():
    names = {entry.name for entry in ckpt.REGISTRY}
    needed = {
        "stylegan2-ffhq-config-f.pt",
        "psp_ffhq_encode.pt",
        "e4e_ffhq_encode.pt",
        "restyle_psp_ffhq_encode.pt",
        "restyle_e4e_ffhq_encode.pt",
        "hyperstyle_ffhq.pt",
        "faces_w_encoder.pt",
        "model_ir_se50.pth",
        "encoder.pt",
        "encoder_wplus.pt",
        "generator-pretrain.pt",
        "<style>/generator.pt",
        "<style>/finetune-000600.pt",
        "<style>/exstyle_code.npy",
    }
    assert needed <= names
    assert len(names) == len(ckpt.REGISTRY), "duplicate registry names"
    for entry in ckpt.REGISTRY:
        assert entry.used_by and entry.layout and entry.source and entry.project, entry.name
        assert entry.sha256 is None or len(entry.sha256) == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        ckpt.REGISTRY[0].name = "x"


def test_registry_entry_matches_style_folders():
    assert ckpt.registry_entry("cartoon/generator.pt").name == "<style>/generator.pt"
    assert ckpt.registry_entry("anime/exstyle_code.npy").name == "<style>/exstyle_code.npy"
    assert ckpt.registry_entry("nope.pt") is None


def test_missing_file_message_names_file_need_source_and_folder(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        ckpt.resolve("restyle_psp_ffhq_encode.pt", tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "restyle_psp_ffhq_encode.pt" in message
    assert "ReStyle-pSp" in message  # what needs it
    assert "1sw6I2lRIB0MpuJkpc8F5BJiSZrc0hjfE" in message  # where the official project publishes it
    assert str(tmp_path) in message  # the folder searched


def test_missing_style_file_and_no_folder(monkeypatch):
    monkeypatch.delenv(ckpt.ENV_WEIGHTS, raising=False)
    with pytest.raises(MissingWeightsError) as info:
        ckpt.resolve("cartoon/generator.pt")
    message = str(info.value)
    assert "cartoon/generator.pt" in message
    assert "DualStyleGAN" in message
    assert "--weights" in message and ckpt.ENV_WEIGHTS in message


def test_resolve_argument_then_environment(tmp_path, monkeypatch):
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    for folder in (env_dir, arg_dir):
        (folder / "cartoon").mkdir(parents=True)
        (folder / "cartoon" / "generator.pt").write_bytes(b"x")
    monkeypatch.setenv(ckpt.ENV_WEIGHTS, str(env_dir))
    assert ckpt.resolve("cartoon/generator.pt") == env_dir / "cartoon" / "generator.pt"
    assert ckpt.resolve("cartoon/generator.pt", arg_dir) == arg_dir / "cartoon" / "generator.pt"


def test_resolve_absolute_path(tmp_path):
    path = tmp_path / "elsewhere" / "encoder.pt"
    with pytest.raises(MissingWeightsError) as info:
        ckpt.resolve(str(path), tmp_path)
    assert str(path) in str(info.value) and "z+ pSp" in str(info.value)
    path.parent.mkdir()
    path.write_bytes(b"x")
    assert ckpt.resolve(str(path), tmp_path) == path


def test_bundled_lpips_heads_match_the_published_sha256(tmp_path, monkeypatch):
    monkeypatch.delenv(ckpt.ENV_WEIGHTS, raising=False)
    path = ckpt.resolve("vgg.pth", tmp_path)  # not in the folder: falls back to the lpips wheel
    assert ckpt.verify_sha256(path) is True  # digest from losses.md §2
    heads = ckpt.load_container(path)  # legacy (non-zip) torch pickle
    assert heads["lin4.model.1.weight"].shape == (1, 512, 1, 1)
    bad = tmp_path / "vgg.pth"
    bad.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        ckpt.verify_sha256(bad)


# ---------------------------------------------------------------------------------------------
# load_container


def test_namespace_under_args_loads_with_weights_only(tmp_path):
    path = tmp_path / "000100.pt"
    args = argparse.Namespace(size=1024, channel_multiplier=2, lr=0.002, name="run", r1=10.0)
    torch.save({"g_ema": {"w": torch.ones(2)}, "args": args, "ada_aug_p": 0.0}, path)
    loaded = ckpt.load_container(path)
    assert isinstance(loaded["args"], argparse.Namespace)
    assert vars(loaded["args"]) == vars(args)
    assert torch.equal(loaded["g_ema"]["w"], torch.ones(2))


@dataclass
class NotAllowed:
    x: int = 1


def test_other_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": NotAllowed()}, path)
    with pytest.raises(CorruptCheckpointError) as info:
        ckpt.load_container(path)
    assert str(path) in str(info.value)
    assert "NotAllowed" in str(info.value)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_file_is_reported(tmp_path, legacy):
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save(
        {"g_ema": {"w": torch.randn(64, 64)}}, path, _use_new_zipfile_serialization=not legacy
    )
    assert ckpt.load_container(path)["g_ema"]["w"].shape == (64, 64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError) as info:
        ckpt.load_container(path)
    assert str(path) in str(info.value)
    assert "truncated" in str(info.value)


@pytest.mark.parametrize(
    "content", [os.urandom(4096), b"", b"PK\x03\x04not a zip"], ids=["random", "empty", "bad-zip"]
)
def test_non_torch_file_is_reported(tmp_path, content):
    path = tmp_path / "model_ir_se50.pth"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError) as info:
        ckpt.load_container(path)
    assert str(path) in str(info.value)


def test_load_container_missing_path(tmp_path):
    with pytest.raises(MissingWeightsError, match="model_ir_se50.pth"):
        ckpt.load_container(tmp_path / "model_ir_se50.pth")


def test_take_lists_the_keys_present(tmp_path):
    with pytest.raises(CorruptCheckpointError) as info:
        ckpt.take({"g": 1, "d": 2}, "g_ema", path=tmp_path / "x.pt")
    assert "'g_ema'" in str(info.value) and "g, d" in str(info.value)


# ---------------------------------------------------------------------------------------------
# strip_prefix / load_strict


def test_strip_prefix_keeps_only_prefixed_keys():
    sd = {"encoder.a": 1, "encoder.b.c": 2, "decoder.a": 3, "latent": 4, "encoderx.q": 5}
    assert ckpt.strip_prefix(sd, "encoder.") == {"a": 1, "b.c": 2}
    assert ckpt.strip_prefix(sd, "decoder.") == {"a": 3}
    assert ckpt.strip_prefix(sd, "") == sd


def test_load_strict_loads_exact_values():
    module = Tiny()
    sd = _seeded_state(module)
    ckpt.load_strict(module, sd, path="x.pt", what="g_ema")
    for key, value in module.state_dict().items():
        assert torch.equal(value, sd[key]), key


def test_renamed_key_is_named(tmp_path):
    module = Tiny()
    sd = _seeded_state(module)
    sd["head.1.weight_renamed"] = sd.pop("head.1.weight")
    with pytest.raises(CheckpointMismatchError) as info:
        ckpt.load_strict(module, sd, path=tmp_path / "e4e_ffhq_encode.pt", what="encoder")
    message = str(info.value)
    assert "e4e_ffhq_encode.pt" in message and "encoder" in message
    assert "missing keys (1): head.1.weight" in message
    assert "unexpected keys (1): head.1.weight_renamed" in message
    assert "Traceback" not in message


def test_shape_mismatch_is_listed():
    module = Tiny()
    sd = _seeded_state(Tiny(width=5))  # same keys, other widths
    with pytest.raises(CheckpointMismatchError) as info:
        ckpt.load_strict(module, sd, path="psp.pt", what="encoder")
    message = str(info.value)
    assert "shape mismatches (3)" in message
    assert "lin.weight: file [5, 3] vs module [4, 3]" in message
    assert "missing" not in message and "unexpected" not in message


def test_absent_buffer_is_reported_as_missing():
    # A module that registers FIR kernel buffers needs them in the file (strict load).
    module = Tiny()
    sd = _seeded_state(module)
    del sd["up.kernel"]
    with pytest.raises(CheckpointMismatchError, match="missing keys \\(1\\): up.kernel"):
        ckpt.load_strict(module, sd)


def test_default_kernels_fill_only_absent_fir_buffers():
    module = Tiny()
    sd = _seeded_state(module)
    stored = sd["up.kernel"]
    assert ckpt.with_default_kernels(module, sd)["up.kernel"] is stored  # present: loaded as stored
    del sd["up.kernel"]
    filled = ckpt.with_default_kernels(module, sd)
    assert torch.equal(filled["up.kernel"], torch.arange(4.0))
    ckpt.load_strict(Tiny(), filled)
    del sd["lin.weight"]  # a parameter is never filled in
    with pytest.raises(CheckpointMismatchError, match="missing keys \\(1\\): lin.weight"):
        ckpt.load_strict(module, ckpt.with_default_kernels(module, sd))


# ---------------------------------------------------------------------------------------------
# latent_avg and pSp containers


@pytest.mark.parametrize("shape", [(512,), (1, 512), (18, 512), (1, 18, 512)], ids=str)
def test_latent_avg_shapes(shape):
    g = torch.Generator().manual_seed(1)
    source = torch.randn(shape, generator=g)
    got = ckpt.normalize_latent_avg(source, n_latent=18)
    assert got.shape == (18, 512) and got.dtype == torch.float32
    rows = source.reshape(-1, 512)
    want = rows.expand(18, -1) if rows.shape[0] == 1 else rows
    assert torch.equal(got, want)


@pytest.mark.parametrize("shape", [(5, 512), (2, 18, 512), (18, 511, 1)], ids=str)
def test_latent_avg_bad_shape(shape):
    with pytest.raises(CheckpointMismatchError, match="latent_avg has shape"):
        ckpt.normalize_latent_avg(torch.zeros(shape), n_latent=18, path="psp_ffhq_encode.pt")


def _psp_file(
    tmp_path, *, prefix="encoder.", latent_avg=None, opts=None, name="psp_ffhq_encode.pt"
):
    enc, dec = _seeded_state(Tiny(), 1), _seeded_state(Tiny(width=6), 2)
    state = {
        **{prefix + k: v for k, v in enc.items()},
        **{"decoder." + k: v for k, v in dec.items()},
    }
    container = {"state_dict": state, "opts": opts if opts is not None else {}}
    if latent_avg is not None:
        container["latent_avg"] = latent_avg
    path = tmp_path / name
    torch.save(container, path)
    return path, enc, dec


@pytest.mark.parametrize("shape", [(512,), (1, 512), (18, 512)], ids=str)
def test_psp_container_parts(tmp_path, shape):
    latent_avg = torch.randn(shape)
    opts = {"encoder_type": "BackboneEncoder", "input_nc": 6, "output_size": 1024}
    path, enc, dec = _psp_file(tmp_path, latent_avg=latent_avg, opts=opts)
    parts = ckpt.load_psp_container(path)
    assert parts["encoder_prefix"] == "encoder."
    assert parts["encoder_sd"].keys() == enc.keys() and parts["decoder_sd"].keys() == dec.keys()
    assert all(torch.equal(parts["encoder_sd"][k], enc[k]) for k in enc)
    assert all(torch.equal(parts["decoder_sd"][k], dec[k]) for k in dec)
    assert parts["latent_avg"].shape == (18, 512)
    assert torch.equal(parts["latent_avg"][-1], latent_avg.reshape(-1, 512)[-1])
    assert parts["opts"] == opts and parts["extra_keys"] == []
    module = ckpt.load_strict(Tiny(), parts["encoder_sd"], path=path, what="encoder")
    assert torch.equal(module.lin.weight, enc["lin.weight"])


def test_psp_container_hypernet_prefix_namespace_opts_and_size(tmp_path):
    opts = argparse.Namespace(output_size=256, layers_to_tune="0,2,3")
    path, enc, _ = _psp_file(
        tmp_path,
        prefix="hypernet.",
        latent_avg=torch.randn(512),
        opts=opts,
        name="hyperstyle_ffhq.pt",
    )
    parts = ckpt.load_psp_container(path)
    assert parts["encoder_prefix"] == "hypernet."
    assert parts["encoder_sd"].keys() == enc.keys()
    assert parts["opts"] == {"output_size": 256, "layers_to_tune": "0,2,3"}
    assert parts["n_latent"] == 14 and parts["latent_avg"].shape == (14, 512)


def test_psp_container_without_latent_avg_or_state_dict(tmp_path):
    path, _, _ = _psp_file(tmp_path)
    assert ckpt.load_psp_container(path)["latent_avg"] is None
    torch.save({"g_ema": {}}, path)
    with pytest.raises(CorruptCheckpointError, match="no 'state_dict' entry"):
        ckpt.load_psp_container(path)


# ---------------------------------------------------------------------------------------------
# config inference from the official key layout (parity manifests list every official key + shape)


def test_generator_config_from_official_layout():
    fixture = parity_dir() / "stylegan2_ffhq1024"
    manifest = json.loads((fixture / "manifest.json").read_text())
    config = ckpt.infer_generator_config(_meta_state(fixture / "manifest.json"))
    assert config == manifest["constructor"]  # {"size": 1024, "style_dim": 512, "n_mlp": 8, ...}


def test_discriminator_config_from_official_layout():
    fixture = parity_dir() / "stylegan2_disc1024"
    meta = json.loads((fixture / "meta.json").read_text())
    config = ckpt.infer_discriminator_config(_meta_state(fixture / "manifest.json"))
    assert config == meta["constructor"]


def test_generator_config_custom_widths():
    # a tiny profile: widths that are not rosinality's table for any multiplier
    widths = {4: 32, 8: 32, 16: 16, 32: 8}
    sd = {
        "conv1.conv.weight": torch.empty(1, 32, 32, 3, 3),
        "conv1.conv.modulation.weight": torch.empty(32, 64),
    }
    for k, res in enumerate((8, 16, 32)):
        sd[f"convs.{2 * k}.conv.weight"] = torch.empty(1, widths[res], widths[res // 2], 3, 3)
        sd[f"to_rgbs.{k}.conv.weight"] = torch.empty(1, 3, widths[res], 1, 1)
    sd.update({f"style.{i}.weight": torch.empty(64, 64) for i in (1, 2)})
    assert ckpt.infer_generator_config(sd) == {
        "size": 32,
        "style_dim": 64,
        "n_mlp": 2,
        "channels": widths,
    }
    with pytest.raises(CorruptCheckpointError, match="not a rosinality StyleGAN2 generator"):
        ckpt.infer_generator_config({"style.1.weight": torch.empty(2, 2)})


# ---------------------------------------------------------------------------------------------
# code files


def test_codes_round_trip_and_refusal(tmp_path):
    codes = {
        "a.jpg": np.random.randn(1, 18, 512).astype(np.float32),
        "b.jpg": np.zeros((1, 18, 512), np.float32),
    }
    path = tmp_path / "exstyle_code.npy"
    np.save(path, codes)  # exactly how DualStyleGAN's destylize.py writes them
    got = ckpt.load_codes(path)
    assert list(got) == ["a.jpg", "b.jpg"]
    assert all(np.array_equal(got[k], codes[k]) and got[k].dtype == np.float32 for k in codes)
    np.save(path, np.array([NotAllowed()], dtype=object), allow_pickle=True)
    with pytest.raises(CorruptCheckpointError, match="forbidden global"):
        ckpt.load_codes(path)


def test_codes_written_by_numpy1(tmp_path):
    # numpy 1.x (which wrote the official files) pickles numpy.core.multiarray._reconstruct
    import pickle

    codes = {"c.jpg": np.arange(18 * 512, dtype=np.float32).reshape(1, 18, 512)}
    array = np.empty((), dtype=object)
    array[()] = codes
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    pickle.dump(array, buf, protocol=2)  # GLOBAL opcodes: module names in plain text
    data = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "instyle_code.npy"
    path.write_bytes(data)
    got = ckpt.load_codes(path)
    assert np.array_equal(got["c.jpg"], codes["c.jpg"])


# ---------------------------------------------------------------------------------------------
# our own files


@dataclass(frozen=True)
class RunConfig:
    size: int = 64
    lr: float = 0.002
    schedule: tuple = (5, 3, 1)


def test_checkpoint_round_trip(tmp_path):
    module = Tiny()
    path = ckpt.save_checkpoint(
        tmp_path / "run" / "000010.pt",
        state_dict=module.state_dict(),
        config=RunConfig(),
        step=10,
        extra={"optim": {"lr": 0.1}},
    )
    payload = ckpt.load_checkpoint(path)
    assert payload["format"] == 1 and payload["step"] == 10
    assert payload["config"] == {"size": 64, "lr": 0.002, "schedule": (5, 3, 1)}
    assert payload["optim"] == {"lr": 0.1}
    restored = ckpt.load_strict(Tiny(), payload["state_dict"], path=path)
    assert torch.equal(restored.lin.weight, module.lin.weight)
    assert list((tmp_path / "run").iterdir()) == [path]  # no temporary file left


def test_official_container_is_not_our_format(tmp_path):
    path = tmp_path / "generator.pt"
    torch.save({"g_ema": {}}, path)
    with pytest.raises(CorruptCheckpointError, match="not a redestyle checkpoint"):
        ckpt.load_checkpoint(path)


def test_interrupted_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "codes.pt"
    ckpt.save_atomic({"v": torch.ones(3)}, path)
    before = path.read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_atomic({"v": torch.zeros(3)}, path)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_atomic({"v": torch.zeros(3)}, tmp_path / "new.pt")
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.pt"]  # no temp, no partial new.pt


def test_atomic_write_text(tmp_path):
    path = tmp_path / "report.json"
    with ckpt.atomic_write(path, "w") as f:
        f.write("{}")
    assert path.read_text() == "{}"


# ---------------------------------------------------------------------------------------------
# weights list


def test_weights_table_marks_present_and_missing(tmp_path):
    (tmp_path / "cartoon").mkdir()
    torch.save({"g_ema": {}}, tmp_path / "cartoon" / "generator.pt")
    torch.save({"state_dict": {}}, tmp_path / "psp_ffhq_encode.pt")
    rows = {row.name: row for row in ckpt.weights_table(tmp_path)}
    assert (
        rows["psp_ffhq_encode.pt"].present
        and rows["psp_ffhq_encode.pt"].path == tmp_path / "psp_ffhq_encode.pt"
    )
    assert rows["cartoon/generator.pt"].present
    assert "<style>/generator.pt" not in rows  # replaced by the style folder found
    assert not rows["e4e_ffhq_encode.pt"].present
    assert not rows["<style>/finetune-000600.pt"].present
    assert rows["e4e_ffhq_encode.pt"].path == tmp_path / "e4e_ffhq_encode.pt"

    out = io.StringIO()
    assert ckpt.main_weights_list(argparse.Namespace(weights=str(tmp_path)), out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == f"weights folder: {tmp_path}"
    assert any(ln.startswith("psp_ffhq_encode.pt") and "present" in ln for ln in lines)
    assert any(ln.startswith("e4e_ffhq_encode.pt") and "missing" in ln for ln in lines)
    assert any("1cUv_reLE6k3604or78EranS7XzuVMWeO" in ln for ln in lines)  # where to get e4e


# ---------------------------------------------------------------------------------------------
# StyleGAN2 loaders with redestyle's own networks (rosinality-shaped containers)

TINY_WIDTHS = {4: 32, 8: 32, 16: 16, 32: 8}  # not rosinality's table: exercises `channels`


def _assert_same_state(module: torch.nn.Module, state_dict: dict) -> None:
    got = module.state_dict()
    assert got.keys() == state_dict.keys()
    for key, value in state_dict.items():
        assert torch.equal(got[key], value), key


def test_load_stylegan2_tiny_round_trip(tmp_path):
    from redestyle.nets.stylegan2 import Discriminator, Generator

    g_ema = _seeded_state(Generator(32, style_dim=64, n_mlp=2, channels=TINY_WIDTHS), 3)
    g = _seeded_state(Generator(32, style_dim=64, n_mlp=2, channels=TINY_WIDTHS), 4)
    d = _seeded_state(Discriminator(32, channels=TINY_WIDTHS), 5)
    latent_avg = torch.randn(64)
    path = tmp_path / "000100.pt"
    args = argparse.Namespace(size=32, channel_multiplier=2, n_mlp=2)  # as rosinality train.py
    torch.save({"g_ema": g_ema, "g": g, "d": d, "latent_avg": latent_avg, "args": args}, path)

    generator, avg = ckpt.load_stylegan2(path)
    assert (generator.size, generator.style_dim, len(generator.convs)) == (32, 64, 6)
    _assert_same_state(generator, g_ema)
    assert torch.equal(avg, latent_avg)
    assert not generator.training
    _assert_same_state(ckpt.load_stylegan2(path, which="g")[0], g)
    _assert_same_state(ckpt.load_discriminator(path), d)

    # older conversions without the FIR kernels: filled with the module's own (= official) values
    no_kernels = {k: v for k, v in g_ema.items() if not k.endswith(".kernel")}
    assert len(no_kernels) < len(g_ema)
    torch.save({"g_ema": no_kernels}, path)
    generator, avg = ckpt.load_stylegan2(path)
    assert avg is None
    fresh = Generator(32, style_dim=64, n_mlp=2, channels=TINY_WIDTHS).state_dict()
    kernels = {k: fresh[k] for k in g_ema if k.endswith(".kernel")}
    assert len(kernels) == 2 * 3  # one up-conv blur + one ToRGB upsample per block
    _assert_same_state(generator, {**no_kernels, **kernels})


def test_load_stylegan2_reports_a_renamed_key(tmp_path):
    from redestyle.nets.stylegan2 import Generator

    sd = _seeded_state(Generator(32, style_dim=64, n_mlp=2, channels=TINY_WIDTHS))
    sd["convs.1.conv.weight_old"] = sd.pop("convs.1.conv.weight")
    path = tmp_path / "finetune-000600.pt"
    torch.save({"g_ema": sd}, path)
    with pytest.raises(CheckpointMismatchError) as info:
        ckpt.load_stylegan2(path)
    message = str(info.value)
    assert str(path) in message and "g_ema" in message
    assert (
        "convs.1.conv.weight_old" in message and "missing keys (1): convs.1.conv.weight" in message
    )


@pytest.fixture(scope="module")
def official_layout_file(tmp_path_factory):
    """stylegan2-ffhq-config-f.pt as the official file is laid out, filled with the rule weights."""
    from conftest import load_parity

    fx = load_parity("stylegan2_ffhq1024")
    container = {
        "g_ema": fx.weights(),
        "d": fx.weights("stylegan2_disc1024"),
        "latent_avg": fx.data["mean_latent"][0].clone(),  # [512], as convert_weight.py stores it
    }
    path = tmp_path_factory.mktemp("weights") / "stylegan2-ffhq-config-f.pt"
    torch.save(container, path)
    return path, container


def test_load_official_layout_bit_exact(official_layout_file):
    path, container = official_layout_file
    generator, latent_avg = ckpt.load_stylegan2(path)
    assert (generator.size, generator.n_latent) == (1024, 18)
    _assert_same_state(generator, container["g_ema"])
    assert torch.equal(latent_avg, container["latent_avg"])
    del generator
    _assert_same_state(ckpt.load_discriminator(path), container["d"])
