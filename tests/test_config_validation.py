"""Every setting is checked once, where the config is built: one line naming it, exit 2."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge_str import EdgeStrError
from edge_str.compare.settings import CompareSettings
from edge_str.config import ModelConfig, OptimConfig, TrainConfig, make_config
from edge_str.families import ARCHS, CNN, FASTGRNN, export_adapter, family_of
from edge_str.families import register_export_adapter as register
from tests._cli import refused


def _train(tmp_path: Path) -> list[str]:
    return ["train", "--task", "har2", "--data", str(tmp_path), "--out", str(tmp_path / "run")]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hidden", "0"], "model.hidden must be at least 1, got 0"),
        (["--hidden", "-5"], "model.hidden must be at least 1, got -5"),
        (["--lr", "-1"], "optim.lr must be greater than 0, got -1.0"),
        (["--batch-size", "0"], "optim.batch_size must be at least 1, got 0"),
        (["--weight-decay", "-1"], "optim.weight_decay must be at least 0, got -1.0"),
        (["--threads", "-2"], "threads must be at least 0, got -2"),
        (["--epochs", "-1"], "optim.epochs must be at least 0, got -1"),
        (["--seed", "-1"], "seed must be from 0 to 4294967295, got -1"),
        (["--s-init", "nan"], "model.s_init must be a finite number, got nan"),
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'; choose from adam, sgd"),
    ],
)
def test_bad_flags_are_one_line_naming_the_setting_and_its_range(tmp_path, capsys, flags, message):
    line = refused([*_train(tmp_path), *flags], capsys)
    assert line.startswith("edge-str: error: command line: ") and message in line
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_zero_epochs_is_a_stored_untrained_run_but_not_a_training(tmp_path, capsys):
    line = refused([*_train(tmp_path), "--epochs", "0"], capsys)
    assert line == "edge-str: error: optim.epochs must be at least 1 to train, got 0"
    assert not (tmp_path / "run").exists()
    untrained = make_config("har2", overrides={"optim": {"epochs": 0}})  # the study's SVD runs
    assert TrainConfig.from_dict(untrained.to_dict()).optim.epochs == 0


def test_threads_zero_keeps_torch_default():
    assert make_config("har2", overrides={"threads": 0}).threads == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("optim:\n  epochs: ten\n", "optim.epochs must be an integer (at least 0), got 'ten'"),
        ('optim:\n  epochs: "ten"\n', "optim.epochs must be an integer (at least 0), got 'ten'"),
        ("model:\n  hidden: 3.7\n", "model.hidden must be an integer (at least 1), got 3.7"),
        ("model:\n  hidden: null\n", "model.hidden must be an integer (at least 1), got None"),
        ("model:\n  svd_each_epoch: 1\n", "model.svd_each_epoch must be true or false, got 1"),
        ("model:\n  arch: [1]\n", "unknown arch [1]; choose from fastgrnn, dscnn"),
        ("optim:\n  lr: .inf\n", "optim.lr must be a finite number (greater than 0), got inf"),
        ("threads: -1\n", "threads must be at least 0, got -1"),
    ],
)
def test_bad_yaml_values_name_the_file_and_setting(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"task: har2\n{text}")
    with pytest.raises(EdgeStrError) as info:
        make_config(None, path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    line = refused(["train", "--config", str(path), "--data", "d", "--out", "r"], capsys)
    assert message in line


def test_yaml_numbers_pyyaml_reads_as_strings_are_the_numbers_meant(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: har2\noptim:\n  lr: 1e-3\n  weight_decay: 5e-4\n  epochs: 1e1\n")
    assert isinstance(yaml.safe_load(path.read_text())["optim"]["lr"], str)  # PyYAML 1.1
    cfg = make_config(None, path)
    assert cfg.optim.lr == 1e-3 and cfg.optim.weight_decay == 5e-4 and cfg.optim.epochs == 10
    assert isinstance(cfg.optim.lr, float) and isinstance(cfg.optim.epochs, int)
    path.write_text("task: har2\nmodel:\n  hidden: 4.0\n  s_init: -3\n")
    cfg = make_config(None, path)
    assert cfg.model.hidden == 4 and isinstance(cfg.model.hidden, int)
    assert cfg.model.s_init == -3.0 and isinstance(cfg.model.s_init, float)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--rank-w", "50"], "model.rank_w applies to rank_mode fixed only (rank_mode is str)"),
        (
            ["--rank-mode", "dense", "--rank-u", "5"],
            "model.rank_u applies to rank_mode fixed only (rank_mode is dense)",
        ),
        (["--width", "0.5"], "model.width is a setting of CNN models; model.arch 'fastgrnn'"),
        (["--sparsity", "gmp"], "model.sparsity is a setting of CNN models"),
        (["--model", "dscnn", "--hidden", "16"], "model.hidden is a setting of FastGRNN models"),
        (["--model", "dscnn", "--s-init", "-3"], "model.s_init is a setting of FastGRNN models"),
        (["--model", "dscnn", "--rank-mode", "fixed"], "model.rank_mode is a setting of FastGRNN"),
    ],
)
def test_settings_the_model_does_not_use_are_refused(tmp_path, capsys, flags, message):
    line = refused([*_train(tmp_path), *flags], capsys)
    assert message in line and line.startswith("edge-str: error: command line: ")
    assert not (tmp_path / "run").exists()


def test_unused_settings_in_a_file_name_the_file_and_task_defaults_do_not_count(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: google12\nmodel:\n  arch: dscnn\n  hidden: 64\n")
    with pytest.raises(EdgeStrError, match="model.hidden is a setting of FastGRNN") as info:
        make_config(None, path)
    assert str(info.value).startswith(f"{path}: ")
    # google12's default hidden (100) and digits' ResNet depth/width are not the user's
    assert make_config("google12", overrides={"model": {"arch": "dscnn"}}).model.arch == "dscnn"
    cfg = make_config("digits", overrides={"model": {"arch": "fastgrnn", "hidden": 8}})
    assert cfg.model.arch == "fastgrnn" and cfg.model.hidden == 8
    fixed = make_config("har2", overrides={"model": {"rank_mode": "fixed", "rank_w": 3}})
    assert fixed.model.rank_w == 3
    # a saved run's config.json holds every field of every family: it loads as it is
    assert TrainConfig.from_dict(fixed.to_dict()) == fixed


def test_the_builders_and_optimizer_refuse_what_the_loader_refuses():
    from edge_str.models import build_model
    from edge_str.training.optim import check_optimizer

    with pytest.raises(EdgeStrError, match="model.hidden must be at least 1, got 0"):
        build_model(ModelConfig(hidden=0), (10, 4), 3)
    with pytest.raises(EdgeStrError, match="model.width must be greater than 0, got 0.0"):
        build_model(ModelConfig(arch="resnet", width=0.0), (8, 8, 1), 3)
    with pytest.raises(EdgeStrError, match="optim.lr must be greater than 0"):
        check_optimizer(OptimConfig(lr=0.0))


def test_registry_knows_each_arch_once_and_owns_each_family_setting():
    assert family_of("fastgrnn") is FASTGRNN and family_of("resnet") is CNN
    assert set(ARCHS) == {*FASTGRNN.archs, *CNN.archs} and len(ARCHS) == len(set(ARCHS))
    with pytest.raises(EdgeStrError, match="unknown model 'vgg'; choose from fastgrnn"):
        family_of("vgg")
    fastgrnn = {f.name for f in dataclasses.fields(FASTGRNN.config)}
    cnn = {f.name for f in dataclasses.fields(CNN.config)}
    assert {"hidden", "rank_w", "s_init"} <= fastgrnn and {"width", "sparsity"} <= cnn
    assert fastgrnn | cnn | {"arch", "init_weights"} == {
        f.name for f in dataclasses.fields(ModelConfig)
    }
    assert FASTGRNN.method(ModelConfig(rank_mode="fixed")) == "fixed"
    assert CNN.method(ModelConfig(arch="dscnn", sparsity="gmp")) == "gmp"


def test_export_adapter_slot(monkeypatch):
    from edge_str import families

    monkeypatch.setattr(families, "_EXPORT_ADAPTERS", {})
    with pytest.raises(EdgeStrError, match="dscnn runs cannot be exported"):
        export_adapter("dscnn")
    adapter = object()
    register("CNN", adapter)
    assert export_adapter("resnet") is adapter
    register("FastGRNN", "edge_str.families:FASTGRNN")  # imported on first lookup
    assert export_adapter("fastgrnn") is FASTGRNN
    with pytest.raises(ValueError, match="no model family named 'RNN'"):
        register("RNN", adapter)


# ----------------------------------------------------------------------------- property


def _known_keys() -> dict[str | None, dict]:
    """Each section's keys with their default values (``None``: the top level)."""
    top = dataclasses.asdict(TrainConfig())
    sections = {name: top.pop(name) for name in ("model", "optim", "data")}
    return {None: top, **sections}


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["1e-3", "ten", "3.7", "-5", "0", "str", "fixed", "resnet", "sgd", "1e400"])
    | st.sampled_from([1e308, -1e308, 5e-324, 2**63, 0.5, 1, 2, 100])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@st.composite
def _yaml_mappings(draw) -> dict:
    """Known keys, each with an arbitrary value or (often) its valid default."""
    keys = _known_keys()

    def value(defaults: dict, name: str):
        return draw(_VALUES | st.just(defaults[name]))

    tree: dict = {}
    for key in draw(st.lists(st.sampled_from(sorted(keys[None])), max_size=3, unique=True)):
        tree[key] = value(keys[None], key)
    for section in ("model", "optim", "data"):
        if draw(st.booleans()):
            names = draw(st.lists(st.sampled_from(sorted(keys[section])), max_size=4, unique=True))
            tree[section] = {name: value(keys[section], name) for name in names}
    return tree


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_yaml_mappings())
def test_any_yaml_of_known_keys_builds_a_valid_config_or_one_clear_error(tree):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(yaml.safe_dump(tree))
        try:
            cfg = make_config(None, path)
        except EdgeStrError as error:
            message = str(error)
            assert message and "\n" not in message, message
            event("refused")
            return
    event("built")
    # valid: the checks pass again on what was built, and it survives a run folder's round trip
    assert cfg.model.arch in ARCHS and cfg.optim.lr > 0 and math.isfinite(cfg.optim.lr)
    assert cfg.optim.epochs >= 0 and cfg.optim.batch_size >= 1 and cfg.threads >= 0
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([f.name for f in dataclasses.fields(CompareSettings)]), _VALUES, max_size=4
    )
)
def test_any_compare_section_builds_settings_or_one_clear_error(raw):
    try:
        built = CompareSettings.from_dict(raw)
    except EdgeStrError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert CompareSettings.from_dict(built.to_dict()) == built
    assert built.finetune_epochs >= 1 and all(len(pair) == 2 for pair in built.fixed_ranks)


def test_a_config_path_that_is_not_a_readable_yaml_file_is_one_line(tmp_path):
    with pytest.raises(EdgeStrError, match="cannot read the config file"):
        make_config(None, tmp_path)  # a folder
    binary = tmp_path / "c.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(EdgeStrError, match=f"{binary}: cannot read the config file"):
        make_config(None, binary)
