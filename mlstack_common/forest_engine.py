"""Random forests scored by ONNX Runtime, built from the fast path's arrays at load time.

Why ONNX Runtime: on one core, for 100 full-depth trees over 20 features, it scores 500 rows in
5-6 ms and 1,000 in 9-11 ms; scikit-learn's `predict_proba` takes 19-22 ms for either, treelite's
`gtil.predict` 14-19 and 29 ms, walking every tree at once in numpy 33 and 73 ms
(`bench/bench_forest_engines.py`, bench/README.md). It needs neither scikit-learn nor the `onnx`
package: the model is one `ai.onnx.ml` `TreeEnsemble` node (opset 5), written here as protobuf
bytes from the arrays.

Equal to scikit-learn, not merely close: scikit-learn compares `float32(x)` against float64
thresholds (`sklearn/tree/_tree.pyx`, `X_ndarray[i, node.feature] <= node.threshold` on a
float32 array). TreeEnsemble 5 takes float64 splits when its input is float64 (the older
TreeEnsembleClassifier/Regressor always answer float32), so the rows are rounded to float32,
widened back, and compared against the exact float64 thresholds; leaf values stay float64.

ONNX Runtime's Linux wheels send usage telemetry to Microsoft and keep a device id and an event
cache under ~/.cache unless ORT_DISABLE_TELEMETRY=1 is set before it is first imported
(microsoft/onnxruntime#27379, "a full non-Windows opt-out"); `import_onnxruntime` sets it
unless the environment already says otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

AVERAGE, SUM = 0, 1
"""TreeEnsemble's `aggregate_function` values (onnx/defs/traditionalml/defs.cc)."""

_INPUT, _OUTPUT = "rows", "scores"
LEAF_BLOCK_ROWS = 8192
"""Rows scored at a time when the leaves come back per tree: a block's rows x trees leaf
numbers (and one class's values of them) stay a few MiB, whatever the chunk size."""


class ForestEngine:
    """Scores a forest of the fast path's arrays; built once, then called per batch of rows.

    Regressors and two-class classifiers average one value per tree (the value, or the second
    class's probability) inside ONNX Runtime. Any other classifier asks it for the leaf each
    tree reaches and averages the leaves' class probabilities in numpy: a TreeEnsemble leaf
    holds one value, and a copy of every tree per class walks every tree once per class (2.3
    times slower for three classes than this, measured; packing several trees' leaf numbers
    into one output was no faster).
    """

    def __init__(self, arrays: dict[str, np.ndarray], classifier: bool) -> None:
        onnxruntime = import_onnxruntime()
        leaf = arrays["leaf"]
        self.trees = len(arrays["roots"])
        self.classifier = classifier
        self.per_tree = classifier and leaf.shape[1] != 2
        tree = _Trees(arrays)
        # Each class's leaf values, contiguous: gathering from a 1-D array was 3 times faster
        # than gathering rows of the leaf matrix, or adding up tree by tree.
        self.class_leaves: list[np.ndarray] = []
        if self.per_tree:
            self.class_leaves = [np.ascontiguousarray(leaf[:, c]) for c in range(leaf.shape[1])]
            targets = tree.tree_of_leaf
            weights = tree.leaves.astype(np.float64)  # which leaf, as an exact float64
        else:
            targets = np.zeros(len(tree.leaves), dtype=np.int64)
            weights = leaf[tree.leaves, -1]
        model = _model_bytes(
            tree,
            width=int(arrays["fill"].shape[0]),
            targets=targets,
            weights=weights,
            target_count=self.trees if self.per_tree else 1,
            aggregate=SUM if self.per_tree else AVERAGE,
        )
        options = onnxruntime.SessionOptions()
        # One thread, as a worker runs: with one intra-op thread ONNX Runtime starts no thread
        # pool, so the session is safe to build before the server forks its workers.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # its own log lines are not JSON; errors still raise
        self._session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, or values, for preprocessed float64 rows."""
        values = np.ascontiguousarray(x, dtype=np.float32).astype(np.float64)
        if self.per_tree:
            blocks = range(0, max(len(values), 1), LEAF_BLOCK_ROWS)
            parts = [self._mean_of_leaves(values[i : i + LEAF_BLOCK_ROWS]) for i in blocks]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        (scores,) = self._session.run([_OUTPUT], {_INPUT: values})
        positive: np.ndarray = scores[:, 0]
        if not self.classifier:
            return positive
        return np.column_stack((1.0 - positive, positive))

    def _mean_of_leaves(self, values: np.ndarray) -> np.ndarray:
        (scores,) = self._session.run([_OUTPUT], {_INPUT: values})
        leaves = scores.astype(np.intp)  # rows x trees
        total = np.column_stack([column[leaves].sum(axis=1) for column in self.class_leaves])
        total /= self.trees
        return total


def import_onnxruntime() -> Any:
    """ONNX Runtime, imported with its telemetry off: nothing about a server's or a training
    job's models and hosts leaves the process, and no device id or event cache is written."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


class _Trees:
    """The fast path's node arrays in TreeEnsemble's terms: internal nodes and leaves numbered
    apart, each branch naming a node or a leaf."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        left, right = arrays["left"], arrays["right"]
        own = np.arange(len(left))
        is_leaf = left == own  # the fast path points a leaf at itself
        roots = np.asarray(arrays["roots"], dtype=np.int64)
        self.leaves = np.flatnonzero(is_leaf)
        self.tree_of_leaf = np.searchsorted(roots, self.leaves, side="right") - 1
        # A tree that is a single leaf gets one branch whose both sides are that leaf, which
        # ONNX Runtime reads as a leaf root (tree_ensemble_attribute.h, transformInputAllTrees).
        internal = np.union1d(np.flatnonzero(~is_leaf), roots)
        number = np.zeros(len(left), dtype=np.int64)
        number[internal] = np.arange(len(internal))
        leaf_number = np.zeros(len(left), dtype=np.int64)
        leaf_number[self.leaves] = np.arange(len(self.leaves))
        lone_leaf = is_leaf[internal]
        true_child = np.where(lone_leaf, internal, left[internal])
        false_child = np.where(lone_leaf, internal, right[internal])
        self.true_leaf = is_leaf[true_child].astype(np.int64)
        self.false_leaf = is_leaf[false_child].astype(np.int64)
        self.true_id = np.where(is_leaf[true_child], leaf_number[true_child], number[true_child])
        self.false_id = np.where(
            is_leaf[false_child], leaf_number[false_child], number[false_child]
        )
        self.feature = np.where(lone_leaf, 0, arrays["feature"][internal]).astype(np.int64)
        self.split = np.where(lone_leaf, 0.0, arrays["threshold"][internal]).astype(np.float64)
        self.roots = number[roots]


def _model_bytes(
    trees: _Trees,
    *,
    width: int,
    targets: np.ndarray,
    weights: np.ndarray,
    target_count: int,
    aggregate: int,
) -> bytes:
    """An ONNX ModelProto: float64 rows in, `target_count` float64 scores per row out."""
    attributes = [
        _attribute_int("aggregate_function", aggregate),
        _attribute_ints("leaf_targetids", targets),
        _attribute_tensor("leaf_weights", np.asarray(weights, dtype="<f8"), _DOUBLE),
        _attribute_int("n_targets", target_count),
        _attribute_ints("nodes_falseleafs", trees.false_leaf),
        _attribute_ints("nodes_falsenodeids", trees.false_id),
        _attribute_ints("nodes_featureids", trees.feature),
        # 0 is BRANCH_LEQ: true (x <= split) goes left, as in scikit-learn.
        _attribute_tensor("nodes_modes", np.zeros(len(trees.split), dtype=np.uint8), _UINT8),
        _attribute_tensor("nodes_splits", trees.split.astype("<f8"), _DOUBLE),
        _attribute_ints("nodes_trueleafs", trees.true_leaf),
        _attribute_ints("nodes_truenodeids", trees.true_id),
        _attribute_int("post_transform", 0),
        _attribute_ints("tree_roots", trees.roots),
    ]
    node = b"".join(
        [
            _field_bytes(1, _INPUT.encode()),
            _field_bytes(2, _OUTPUT.encode()),
            _field_bytes(3, b"forest"),
            _field_bytes(4, b"TreeEnsemble"),
            *(_field_bytes(5, attribute) for attribute in attributes),
            _field_bytes(7, b"ai.onnx.ml"),
        ]
    )
    graph = b"".join(
        [
            _field_bytes(1, node),
            _field_bytes(2, b"forest"),
            _field_bytes(11, _value_info(_INPUT, width)),
            _field_bytes(12, _value_info(_OUTPUT, target_count)),
        ]
    )
    return b"".join(
        [
            _field_varint(1, _IR_VERSION),
            _field_bytes(2, b"mlstack"),
            _field_bytes(7, graph),
            _field_bytes(8, _field_bytes(1, b"") + _field_varint(2, _ONNX_OPSET)),
            _field_bytes(8, _field_bytes(1, b"ai.onnx.ml") + _field_varint(2, _ML_OPSET)),
        ]
    )


# Protobuf wire format (protobuf.dev/programming-guides/encoding) of the few ONNX messages used
# here; field numbers and enum values are those of onnx/onnx.proto3.
_IR_VERSION = 10  # ONNX 1.16, which added TreeEnsemble (ai.onnx.ml opset 5)
_ONNX_OPSET, _ML_OPSET = 21, 5
_UINT8, _DOUBLE = 2, 11  # TensorProto.DataType
_ATTR_INT, _ATTR_TENSOR, _ATTR_INTS = 2, 4, 7  # AttributeProto.AttributeType


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _varints(values: np.ndarray) -> bytes:
    """Non-negative integers as consecutive varints, in numpy (a forest has 10^5-10^6 of them)."""
    v = np.asarray(values, dtype=np.uint64)
    if len(v) == 0:
        return b""
    groups = max(1, (int(v.max()).bit_length() + 6) // 7)
    shifts = np.arange(groups, dtype=np.uint64) * np.uint64(7)
    sevens = ((v[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    needed = 1 + (v[:, None] >= (np.uint64(1) << shifts[1:])).sum(axis=1)
    position = np.arange(groups)
    sevens |= np.where(position < needed[:, None] - 1, 0x80, 0).astype(np.uint8)
    encoded: bytes = sevens[position < needed[:, None]].tobytes()
    return encoded


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _attribute_int(name: str, value: int) -> bytes:
    return _field_bytes(1, name.encode()) + _field_varint(20, _ATTR_INT) + _field_varint(3, value)


def _attribute_ints(name: str, values: np.ndarray) -> bytes:
    # Packed: protobuf parsers accept packed and unpacked encodings of a repeated number alike.
    packed = _field_bytes(8, _varints(values))
    return _field_bytes(1, name.encode()) + _field_varint(20, _ATTR_INTS) + packed


def _attribute_tensor(name: str, values: np.ndarray, data_type: int) -> bytes:
    tensor = _field_varint(1, len(values)) + _field_varint(2, data_type)
    tensor += _field_bytes(9, np.ascontiguousarray(values).tobytes())  # raw_data, little-endian
    return (
        _field_bytes(1, name.encode()) + _field_varint(20, _ATTR_TENSOR) + _field_bytes(5, tensor)
    )


def _value_info(name: str, columns: int) -> bytes:
    rows = _field_bytes(1, _field_bytes(2, b"rows"))  # a named, free dimension
    shape = rows + _field_bytes(1, _field_varint(1, columns))
    tensor_type = _field_varint(1, _DOUBLE) + _field_bytes(2, shape)
    return _field_bytes(1, name.encode()) + _field_bytes(2, _field_bytes(1, tensor_type))
