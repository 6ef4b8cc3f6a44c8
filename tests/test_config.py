import pytest

from edge_str import EdgeStrError
from edge_str.config import TrainConfig, make_config


def test_precedence_defaults_task_yaml_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: har2\nmodel:\n  hidden: 64\n  rank_mode: fixed\noptim:\n  lr: 0.005\n")
    cfg = make_config(None, path, {"model": {"rank_w": 3, "hidden": None}, "seed": 7})
    assert cfg.task == "har2"
    assert cfg.model.hidden == 64  # the file beats the task default (80); None flags do not count
    assert cfg.model.rank_w == 3 and cfg.seed == 7 and cfg.optim.lr == 0.005
    assert make_config("google12", path).task == "google12"  # an explicit --task beats the file
    assert make_config("har2").model.hidden == 80 and make_config("google12").model.hidden == 100


def test_round_trip_through_a_dict():
    cfg = make_config(
        "har2", overrides={"model": {"rank_mode": "dense"}, "data": {"har_classes": 6}}
    )
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg


@pytest.mark.parametrize(
    "text, message",
    [
        ("model:\n  hiden: 3\n", "unknown setting"),
        ("colour: red\n", "unknown setting 'colour'"),
        ("model: [1, 2]\n", "expected a mapping"),
        ("- a\n- b\n", "expected a mapping"),
        ("model: {hidden: 3\n", "not valid YAML"),
    ],
)
def test_bad_files_give_one_clear_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(EdgeStrError, match=message) as info:
        make_config(None, path)
    assert str(path) in str(info.value)


def test_missing_file_and_unknown_task(tmp_path):
    with pytest.raises(EdgeStrError, match="config file not found"):
        make_config(None, tmp_path / "nope.yaml")
    with pytest.raises(EdgeStrError, match="unknown task"):
        make_config("mnist")
