"""Training configs: strict keys, value checks, round trips, and every shipped config builds."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from sensorysync_training.config import Config, ConfigError, load_config
from sensorysync_training.registry import build_model

from sensorysync_ros.manifest import Manifest

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
OURS = ["fashion_mnist.yaml", "mnist.yaml", "tiny.yaml"]


def _tiny_dict() -> dict:
    return yaml.safe_load((CONFIGS / "tiny.yaml").read_text())


def test_unknown_and_missing_keys_are_listed_together():
    data = _tiny_dict()
    data["train"]["learning_rate"] = 0.1
    del data["train"]["lr"]
    data["modalities"][1]["colour"] = "red"
    del data["modalities"][0]["latent_dim"]
    data["extra_section"] = {}
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, source="my.yaml")
    message = str(info.value)
    for key in ["train.learning_rate", "train.lr", "modalities[1].colour",
                "modalities[0].latent_dim", "extra_section"]:
        assert key in message, message
    assert message.startswith("my.yaml: ")
    assert "\n" not in message


def test_invalid_values_are_listed_together():
    data = _tiny_dict()
    data["modalities"][0]["likelihood"] = "poisson"
    data["modalities"][1]["drop_prob"] = 1.0
    data["model"]["type"] = "gan"
    data["modalities"][0]["network"]["channels"] = [4, 8, 16]  # 28 not divisible by 8
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data)
    message = str(info.value)
    for part in ["'poisson'", "drop_prob must be in [0, 1)", "'gan'", "divisible by 8"]:
        assert part in message, message


def test_wrong_types_name_the_key():
    data = _tiny_dict()
    data["train"]["batch_size"] = "64"
    with pytest.raises(ConfigError, match=r"train\.batch_size must be int, got '64'"):
        Config.from_dict(data)


def test_load_config_names_an_unreadable_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("name", OURS)
def test_shipped_configs_round_trip_build_and_give_valid_manifest_specs(name: str):
    config = load_config(CONFIGS / name)
    again = Config.from_dict(copy.deepcopy(config.to_dict()))
    assert again == config
    assert "lambda" in config.to_dict()["modalities"][0]
    model = build_model(config)
    xs = [torch.zeros(2, *m.shape) for m in config.modalities]
    model.train()
    terms = model(xs, 0.0)
    assert {"loss", "elbo", "kl_c"} <= set(terms)
    Manifest(
        modalities=tuple(m.to_spec() for m in config.modalities),
        core_latent_dim=config.model.core_latent_dim,
        modality_latent_dims=tuple(m.latent_dim for m in config.modalities),
    )


def test_paper_fashion_mnist_architecture():
    config = load_config(CONFIGS / "fashion_mnist.yaml")
    image, label = config.modalities
    assert (image.network.arch, image.network.channels, image.network.hidden) == (
        "conv", (32, 64), (128,))
    assert image.network.activation == "swish" and image.likelihood == "bernoulli"
    assert label.network.hidden == (128, 128, 128) and label.likelihood == "categorical"
    assert config.model.core_hidden == (64, 64, 64)
    assert (image.latent_dim, label.latent_dim, config.model.core_latent_dim) == (16, 16, 10)
    assert (config.model.warmup_modality_epochs, config.model.warmup_core_epochs) == (100, 200)
    assert (config.train.batch_size, config.train.lr, config.train.epochs) == (64, 1e-3, 500)
    assert image.drop_prob == label.drop_prob == 0.5


def test_exponent_floats_that_yaml_reads_as_strings_are_accepted(tmp_path: Path):
    text = (CONFIGS / "tiny.yaml").read_text().replace("lr: 0.001", "lr: 1e-3")
    assert "lr: 1e-3" in text
    (tmp_path / "c.yaml").write_text(text)
    assert load_config(tmp_path / "c.yaml").train.lr == 1e-3
