"""Manifest schema: round trip and errors that name the problem."""

from __future__ import annotations

import json

import pytest

from sensorysync_ros.errors import ManifestError
from sensorysync_ros.manifest import Manifest, ModalitySpec, RosBinding


def _manifest() -> Manifest:
    return Manifest(
        modalities=(
            ModalitySpec(
                "camera", "image", (3, 8, 8), "bernoulli", {"encoding": "rgb8"},
                RosBinding("camera/image_raw", "sensor_msgs/msg/Image", 30.0),
            ),
            ModalitySpec(
                "label", "categorical", (3,), "categorical", {"classes": ["a", "b", "c"]},
                RosBinding("label", "std_msgs/msg/Float32MultiArray", 10.0),
            ),
        ),
        core_latent_dim=4,
        modality_latent_dims=(2, 2),
        provenance={"dataset": "unit"},
    )


def test_round_trip_is_exact():
    manifest = _manifest()
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_unknown_modality_is_named():
    with pytest.raises(ManifestError, match="unknown modality 'audio'"):
        _manifest().index("audio")


def test_missing_preprocess_key_is_named():
    data = json.loads(_manifest().to_json())
    del data["modalities"][0]["preprocess"]["encoding"]
    with pytest.raises(ManifestError, match=r"camera.*preprocess lacks \['encoding'\]"):
        Manifest.from_dict(data)


def test_malformed_json_is_reported():
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json("{not json")
