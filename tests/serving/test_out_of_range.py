"""Values outside what a model was trained on, counted per feature in /metrics as a real server
scores them, for a model with a categorical, a nullable and a declared range (`mixed`) and one
whose ranges training recorded from its data (`linear`, the demo data)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mlstack_common.artifact import Feature, read_metadata
from serving.ranges import RangeCheck
from tests.serving.conftest import Server
from training.report import baseline_statistics, served_features

FEATURES = (
    Feature(name="size", type="numeric", minimum=0.0, maximum=30.0, nullable=True),
    Feature(name="weight", type="numeric"),
    Feature(name="colour", type="categorical", categories=("red", "blue")),
)


def out_of_range(server: Server) -> dict[str, float]:
    _, _, body = server.request("GET", "/metrics")
    return {
        match[1]: float(match[2])
        for match in re.finditer(
            r'^mlstack_feature_out_of_range_total\{.*feature="([^"]+)"\} (\S+)$',
            body.decode(),
            re.MULTILINE,
        )
    }


def test_a_value_counts_against_its_feature_when_outside_its_range_or_categories() -> None:
    check = RangeCheck(FEATURES)
    rows = np.asarray(
        [
            [31.0, 1e9, "red"],
            [-1.0, 5.0, "green"],
            [float("nan"), 5.0, None],  # missing is not out of range
            [30.0, -1e9, "blue"],  # the bounds are in range
        ],
        dtype=object,
    )
    # `weight` has no range: it is never counted.
    assert check.outside(rows) == {0: 2, 2: 1}
    assert check.checked == (0, 2)
    numeric = RangeCheck(FEATURES[:1])
    assert numeric.outside(np.asarray([[1.0], [40.0], [np.nan]])) == {0: 1}


def test_training_records_the_range_it_saw_where_the_dataset_declares_none() -> None:
    frame = pd.DataFrame({"size": [1.0, 2.0], "weight": [3.0, 7.5], "colour": ["red", "blue"]})
    served = served_features(FEATURES, baseline_statistics(frame, FEATURES))
    assert (served[0].minimum, served[0].maximum) == (0.0, 30.0)  # declared: kept
    assert (served[1].minimum, served[1].maximum) == (3.0, 7.5)  # seen in training
    assert served[2] == FEATURES[2]


def test_the_server_counts_out_of_range_values_per_feature(mixed_server: Server) -> None:
    before = out_of_range(mixed_server)
    assert before.keys() == {"colour", "size"}
    rows = [["purple", 10.0], ["red", 45.0], ["red", None], ["blue", 12.5]]
    status, _, _ = mixed_server.post(json.dumps(rows).encode())
    assert status == 200
    after = out_of_range(mixed_server)
    assert {name: after[name] - before[name] for name in after} == {"colour": 1, "size": 1}


def test_ranges_training_saw_are_checked_on_an_all_numeric_model(
    linear_server: Server, trained_models: dict[str, Path], demo_rows: list[list[float]]
) -> None:
    metadata = read_metadata(trained_models["linear"])
    assert all(f.minimum is not None and f.maximum is not None for f in metadata.features)
    before = out_of_range(linear_server)
    assert len(before) == len(metadata.features)
    row = list(demo_rows[0])
    row[3] = (metadata.features[3].maximum or 0.0) * 10 + 1
    status, _, _ = linear_server.post(json.dumps([row, demo_rows[1]]).encode())
    assert status == 200
    after = out_of_range(linear_server)
    changed = {name: after[name] - before[name] for name in after if after[name] != before[name]}
    assert changed == {metadata.features[3].name: 1}
