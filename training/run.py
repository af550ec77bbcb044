"""One training run: data in, a validated, evaluated, documented model version out.

Order matters: everything that can refuse the run (spec, data, settings, quality gate) runs
before anything is written to the models bucket or the registry.
"""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving import storage
from serving.artifact import (
    TARBALL,
    ModelMetadata,
    load_model_dir,
    pack,
    unpack,
    write_model_dir,
)
from serving.fastpath import compile_pipeline
from training import dataset as datasets
from training.evaluation import evaluate
from training.gate import GateDecision, decide
from training.model import TrainedModel, train
from training.plots import evaluation_plots
from training.registry import ApprovedVersion, ModelRegistry, RegisteredVersion
from training.report import baseline_statistics, model_card
from training.settings import GateSettings, Hyperparameters
from training.spec import DatasetSpec, dump_spec, load_spec


@dataclass(frozen=True, kw_only=True)
class TrainingRequest:
    """Everything a run needs; the CLI builds it from flags or the SageMaker contract."""

    data_uri: str
    spec_uri: str
    model_dir: Path
    """Where model.joblib and metadata.json go (SageMaker: /opt/ml/model)."""
    report_dir: Path
    """Where the card, plots, evaluation and statistics go (SageMaker: /opt/ml/output/data)."""
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    gate: GateSettings = field(default_factory=GateSettings)
    model_name: str = "model"
    models_uri: str | None = None
    """s3:// prefix (or directory) the artifacts are published under; None publishes nothing."""
    model_package_group: str | None = None
    """Register into this group; needs `models_uri` and `serving_image`."""
    serving_image: str | None = None
    git_commit: str = ""
    image_digest: str = ""


@dataclass(frozen=True)
class TrainingOutcome:
    """What happened, for the CLI to report and tests to check."""

    metadata: ModelMetadata
    gate: GateDecision
    registered: RegisteredVersion | None
    artifact_uri: str | None
    report_files: tuple[Path, ...]


class GateRefusedError(RuntimeError):
    """The quality gate refused the version and config says not to keep a record of it."""

    def __init__(self, gate: GateDecision, outcome: TrainingOutcome) -> None:
        super().__init__(gate.summary)
        self.outcome = outcome


def _library_versions() -> dict[str, str]:
    import joblib
    import numpy
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
    }


def _approved_metrics(
    registry: ModelRegistry | None, trained: TrainedModel, spec: DatasetSpec
) -> tuple[ApprovedVersion | None, dict[str, float] | None]:
    """The approved version's metrics on *this* run's hold-out set, so the comparison is fair;
    its recorded metrics only when its inputs differ from this dataset's."""
    approved = registry.latest_approved() if registry else None
    if approved is None:
        return None, None
    with tempfile.TemporaryDirectory() as scratch:
        tarball = Path(scratch) / TARBALL
        tarball.write_bytes(storage.read_bytes(approved.model_data_url))
        unpack(tarball, Path(scratch) / "model")
        model, metadata = load_model_dir(Path(scratch) / "model")
    if metadata.feature_names != tuple(f.name for f in spec.features) or metadata.task != spec.task:
        return approved, approved.metrics
    return approved, evaluate(model, spec.task, trained.holdout.features, trained.holdout.target)


def run_training(request: TrainingRequest) -> TrainingOutcome:
    """Validate, train, evaluate, gate, then publish and register; raises before publishing."""
    if request.model_package_group and not (request.models_uri and request.serving_image):
        raise ValueError(
            "registering needs models_uri (where the artifact goes) and serving_image "
            "(the image that serves it)"
        )
    spec = load_spec(storage.read_bytes(request.spec_uri).decode("utf-8"))
    data = datasets.load(storage.read_bytes(request.data_uri), request.data_uri, spec)
    trained = train(data, spec.features, spec.task, request.hyperparameters)

    registry = ModelRegistry(request.model_package_group) if request.model_package_group else None
    approved, approved_metrics = _approved_metrics(registry, trained, spec)
    gate = decide(
        spec.task, trained.metrics, trained.baseline_metrics, approved_metrics, request.gate
    )

    described = ModelMetadata(
        model_name=request.model_package_group or request.model_name,
        task=spec.task,
        features=spec.features,
        target=spec.target,
        classes=trained.classes,
        algorithm=request.hyperparameters.algorithm,
        hyperparameters=vars(request.hyperparameters),
        metrics=trained.metrics,
        library_versions=_library_versions(),
        data_sha256=data.sha256,
        data_uri=request.data_uri,
        git_commit=request.git_commit,
        image_digest=request.image_digest,
    )
    # Checked against scikit-learn on probe rows and on this run's hold-out rows (it only
    # compiles all-numeric pipelines, whose hold-out matrix is float).
    numeric = all(f.type == "numeric" for f in described.features)
    compiled = compile_pipeline(
        trained.pipeline, described, trained.holdout.features if numeric else None
    )
    metadata = write_model_dir(
        request.model_dir,
        trained.pipeline,
        described,
        compiled.to_bytes() if compiled is not None else None,
    )
    report = request.report_dir
    report.mkdir(parents=True, exist_ok=True)
    plots = evaluation_plots(
        report, spec.task, trained.pipeline, trained.holdout.features, trained.holdout.target
    )
    evaluation = {
        "task": spec.task,
        "primary_metric": gate.metric,
        "metrics": trained.metrics,
        "baseline_metrics": trained.baseline_metrics,
        "approved_version": approved.arn if approved else None,
        "approved_metrics": approved_metrics,
        "gate": {"passed": gate.passed, "reasons": list(gate.reasons)},
        "holdout_rows": len(trained.holdout.target),
    }
    (report / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    (report / "baseline_statistics.json").write_text(
        json.dumps(baseline_statistics(data.features, spec.features), indent=2) + "\n"
    )
    (report / "dataset_spec.yaml").write_text(dump_spec(spec))

    keep = gate.passed or request.gate.keep_rejected
    status = (
        ("Approved" if request.gate.auto_approve else "PendingManualApproval")
        if gate.passed
        else "Rejected"
    )

    def card(version: str, approval: str) -> Path:
        path = report / "model_card.md"
        path.write_text(
            model_card(
                metadata,
                version=version,
                rows=data.rows,
                holdout_rows=len(trained.holdout.target),
                baseline_metrics=trained.baseline_metrics,
                approved_metrics=approved_metrics,
                gate=gate,
                approval_status=approval,
                plots=[p.name for p in plots],
            )
        )
        return path

    files = tuple(sorted(report.iterdir()))
    if not keep:
        card("not registered", "not registered: the quality gate refused it")
        raise GateRefusedError(
            gate, TrainingOutcome(metadata, gate, None, None, tuple(sorted(report.iterdir())))
        )
    if not request.models_uri:
        card("not registered", "not registered: no models location given")
        return TrainingOutcome(metadata, gate, None, None, tuple(sorted(report.iterdir())))

    # Content-addressed: the same data and model publish to the same place.
    prefix = storage.join(
        request.models_uri, metadata.model_name, f"{data.sha256[:12]}-{metadata.model_sha256[:12]}"
    )
    artifact_uri = storage.join(prefix, TARBALL)
    storage.write_bytes(artifact_uri, pack(request.model_dir), "application/gzip")
    for path in files:
        storage.write_bytes(storage.join(prefix, path.name), path.read_bytes(), _content_type(path))
    registered = None
    if registry is not None and request.serving_image:
        registered = registry.register(
            serving_image=request.serving_image,
            model_data_url=artifact_uri,
            evaluation_url=storage.join(prefix, "evaluation.json"),
            approval_status=status,
            description=gate.summary,
            metrics=trained.metrics,
            lineage={
                "data_sha256": data.sha256,
                "data_uri": request.data_uri,
                "git_commit": request.git_commit,
                "image_digest": request.image_digest,
                "model_sha256": metadata.model_sha256,
                "algorithm": metadata.algorithm,
                "model_card": storage.join(prefix, "model_card.md"),
                "scikit_learn": metadata.library_versions.get("scikit-learn", ""),
            },
            commit=request.git_commit,
        )
        version, approval = str(registered.version), registered.approval_status
    else:
        version, approval = "not registered", "not registered: no model package group given"
    card_path = card(version, approval)
    storage.write_bytes(
        storage.join(prefix, card_path.name), card_path.read_bytes(), "text/markdown"
    )
    return TrainingOutcome(
        metadata, gate, registered, artifact_uri, tuple(sorted(report.iterdir()))
    )


def _content_type(path: Path) -> str:
    return {
        ".json": "application/json",
        ".md": "text/markdown",
        ".png": "image/png",
        ".yaml": "application/yaml",
    }.get(path.suffix, "application/octet-stream")


def describe(outcome: TrainingOutcome) -> dict[str, Any]:
    """A JSON-able summary of a run, printed by the CLI."""
    return {
        "model": outcome.metadata.model_name,
        "gate": {"passed": outcome.gate.passed, "reasons": list(outcome.gate.reasons)},
        "metrics": dict(outcome.metadata.metrics),
        "artifact": outcome.artifact_uri,
        "registered": (
            {
                "arn": outcome.registered.arn,
                "version": outcome.registered.version,
                "status": outcome.registered.approval_status,
            }
            if outcome.registered
            else None
        ),
    }
