"""One training run: data in, a validated, evaluated, documented model version out.

Order matters: everything that can refuse the run (spec, data, settings, quality gate) runs
before anything is written to the models bucket or the registry.
"""

from __future__ import annotations

import platform
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack_common import storage
from mlstack_common.artifact import (
    TARBALL,
    ModelMetadata,
    load_model_dir,
    pack,
    strict_json,
    unpack,
    write_model_dir,
)
from mlstack_common.fastpath import compile_pipeline
from mlstack_common.registry import (
    APPROVED,
    PENDING,
    ModelPackage,
    ModelRegistry,
    RegisteredVersion,
)
from training import dataset as datasets
from training.errors import InputError
from training.evaluation import evaluate
from training.gate import GateDecision, decide
from training.model import TrainedModel, train
from training.plots import evaluation_plots
from training.report import baseline_statistics, model_card, served_features
from training.settings import GateSettings, Hyperparameters
from training.spec import DatasetSpec, dump_spec, load_spec
from training.tracking import TrackedRun, TrackingError, TrackingTarget


def new_run_id() -> str:
    """UTC time of the run and 8 random hex digits: sorts by time, never repeats."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)


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
    run_id: str = field(default_factory=new_run_id)
    """Names this run's report prefix, so no two runs (or versions) share one."""
    environment: str = ""
    """The stack's environment, recorded as a tag of the MLflow run."""
    tracking: TrackingTarget | None = None
    """Record the run in MLflow there; None: no tracking, and MLflow is never imported."""


@dataclass(frozen=True)
class TrainingOutcome:
    """What happened, for the CLI to report and tests to check."""

    metadata: ModelMetadata
    gate: GateDecision
    registered: RegisteredVersion | None
    artifact_uri: str | None
    report_files: tuple[Path, ...]
    mlflow_run_id: str | None = None


class GateRefusedError(RuntimeError):
    """The quality gate refused the version; with `keep_rejected` it was registered as
    Rejected (`outcome.registered`), otherwise nothing was published."""

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
) -> tuple[ModelPackage | None, dict[str, float] | None, str | None]:
    """The approved version, its metrics on *this* run's hold-out set (so the comparison is
    fair), and why it cannot be compared when its inputs or classes differ from this run's."""
    approved = registry.latest_approved() if registry else None
    if approved is None:
        return None, None, None
    with tempfile.TemporaryDirectory() as scratch:
        tarball = Path(scratch) / TARBALL
        tarball.write_bytes(storage.read_bytes(approved.model_data_url))
        unpack(tarball, Path(scratch) / "model")
        model, metadata = load_model_dir(Path(scratch) / "model")
    difference = schema_difference(metadata, spec, trained.classes)
    if difference is not None:
        return approved, approved.metrics, difference
    metrics = evaluate(model, spec.task, trained.holdout.features, trained.holdout.target)
    return approved, metrics, None


def schema_difference(
    approved: ModelMetadata, spec: DatasetSpec, classes: tuple[str, ...]
) -> str | None:
    """Why a version of `spec` with `classes` cannot be scored against `approved`; None when
    the task, the features in their order and the class set are the same."""
    if approved.task != spec.task:
        return f"the approved version is a {approved.task} model, this one {spec.task}"
    features = tuple(f.name for f in spec.features)
    if approved.feature_names != features:
        if set(approved.feature_names) == set(features):
            return "the same features in another order"
        added = sorted(set(features) - set(approved.feature_names))
        dropped = sorted(set(approved.feature_names) - set(features))
        return f"features added: {added or 'none'}, dropped: {dropped or 'none'}"
    if set(approved.classes) != set(classes):
        return f"classes {sorted(approved.classes)} in the approved version, {sorted(classes)} here"
    return None


Progress = Callable[[str], None]


def _quiet(_step: str) -> None:
    return None


def run_training(request: TrainingRequest, progress: Progress = _quiet) -> TrainingOutcome:
    """Validate, train, evaluate, gate, then publish and register; raises before publishing.

    With `request.tracking`, the run is recorded in MLflow: it starts before the data is read
    (a server that cannot be used stops the run there), parameters, metrics and the report go
    in before anything is published, and its id is in the registered version's metadata.
    What follows registration (the final card, the version's tags, the run's end) only warns
    when it fails: the version is registered, and a retried job would register it again.

    `progress` hears each step as it starts (the CLI prints them on stderr)."""
    if request.model_package_group and not (request.models_uri and request.serving_image):
        raise ValueError(
            "registering needs models_uri (where the artifact goes) and serving_image "
            "(the image that serves it)"
        )
    registry = ModelRegistry(request.model_package_group) if request.model_package_group else None
    if registry is not None:
        registry.check_group()
    _check_inputs_exist(request)
    tracking = request.tracking
    tracked = _start_tracking(request, tracking, progress) if tracking is not None else None
    try:
        outcome = _train(request, registry, tracked, progress)
    except BaseException as error:
        # After the server itself failed, asking it to record the failure would only wait.
        if tracked is not None and not isinstance(error, TrackingError):
            failure = {"mlstack.error": str(error)[:5000]}
            _late(progress, lambda: tracked.set_tags(failure))
            _late(progress, lambda: tracked.end(succeeded=False))
        raise
    if tracked is not None:
        _late(progress, lambda: tracked.end(succeeded=True))
    return outcome


def _start_tracking(
    request: TrainingRequest, target: TrackingTarget, progress: Progress
) -> TrackedRun:
    progress(f"starting an MLflow run on {target.shown}")
    tracked = TrackedRun.start(
        target,
        experiment=request.model_package_group or request.model_name,
        run_name=request.run_id,
        tags={
            "mlstack.model": request.model_package_group or request.model_name,
            "mlstack.environment": request.environment,
            "mlflow.source.git.commit": request.git_commit,
            "mlflow.source.name": "mlstack-train",
            "mlstack.image_digest": request.image_digest,
        },
    )
    progress(f"MLflow run {tracked.run_id} ({request.run_id})")
    return tracked


def _late(progress: Progress, step: Callable[[], None]) -> None:
    """A tracking step after the outcome is decided: a failure is a warning, not the result."""
    try:
        step()
    except TrackingError as error:
        progress(f"warning: {error}")


def _train(
    request: TrainingRequest,
    registry: ModelRegistry | None,
    tracked: TrackedRun | None,
    progress: Progress,
) -> TrainingOutcome:
    progress(f"reading {request.data_uri} and {request.spec_uri}")
    spec = load_spec(storage.read_bytes(request.spec_uri).decode("utf-8"))
    raw = storage.read_bytes(request.data_uri)
    progress(f"validating {len(raw):,} bytes against the spec")
    data = datasets.load(raw, request.data_uri, spec)
    if tracked is not None:
        tracked.log_params(
            {
                "algorithm": request.hyperparameters.algorithm,
                "task": spec.task,
                **{f"hp.{k}": v for k, v in vars(request.hyperparameters).items()},
                **{f"gate.{k}": v for k, v in vars(request.gate).items()},
                "data.uri": request.data_uri,
                "data.sha256": data.sha256,
                "data.rows": data.rows,
                "data.features": len(spec.features),
                "data.target": spec.target,
            }
        )
    progress(f"fitting {request.hyperparameters.algorithm} on {data.rows:,} rows")
    trained = train(data, spec.features, spec.task, request.hyperparameters)
    progress("evaluating against the baseline and the approved version")

    approved, approved_metrics, incomparable = _approved_metrics(registry, trained, spec)
    gate = decide(
        spec.task,
        trained.metrics,
        trained.baseline_metrics,
        approved_metrics,
        request.gate,
        incomparable=incomparable,
    )

    baseline = baseline_statistics(data.features, spec.features)
    described = ModelMetadata(
        model_name=request.model_package_group or request.model_name,
        task=spec.task,
        features=served_features(spec.features, baseline),
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
    written = [
        *plots,
        _write(report / "evaluation.json", strict_json(evaluation) + "\n"),
        _write(
            report / "baseline_statistics.json",
            strict_json(baseline) + "\n",
        ),
        _write(report / "dataset_spec.yaml", dump_spec(spec)),
    ]

    if tracked is not None:
        tracked.log_params(
            {"data.holdout_rows": len(trained.holdout.target), "classes": ",".join(trained.classes)}
        )
        tracked.log_metrics(
            {
                **trained.metrics,
                **{f"baseline_{k}": v for k, v in trained.baseline_metrics.items()},
                **{f"approved_{k}": v for k, v in (approved_metrics or {}).items()},
            }
        )
        tracked.log_files(written)
        tracked.set_tags({"mlstack.gate": "passed" if gate.passed else "refused"})

    keep = gate.passed or request.gate.keep_rejected
    status = (APPROVED if request.gate.auto_approve else PENDING) if gate.passed else "Rejected"

    def card(version: str, approval: str) -> Path:
        return _write(
            report / "model_card.md",
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
                mlflow_run=tracked.run_id if tracked is not None else None,
            ),
        )

    def outcome(
        card_path: Path, registered: RegisteredVersion | None = None, artifact: str | None = None
    ) -> TrainingOutcome:
        files = tuple(sorted([*written, card_path]))
        run_id = tracked.run_id if tracked is not None else None
        return TrainingOutcome(metadata, gate, registered, artifact, files, run_id)

    def track_card(card_path: Path, tags: dict[str, str]) -> None:
        if tracked is not None:
            _late(progress, lambda: tracked.log_files([card_path]))
            _late(progress, lambda: tracked.set_tags(tags))

    if not keep:
        refused = card("not registered", "not registered: the quality gate refused it")
        track_card(refused, {"mlstack.registered": "no"})
        raise GateRefusedError(gate, outcome(refused))
    if not request.models_uri:
        unpublished = card("not registered", "not registered: no models location given")
        track_card(unpublished, {"mlstack.registered": "no"})
        return outcome(unpublished)

    # The model is content-addressed: the same data and model publish the same bytes to the same
    # key, which a later run of the same model reuses. The report belongs to this run alone.
    model_prefix = storage.join(
        request.models_uri, metadata.model_name, f"{data.sha256[:12]}-{metadata.model_sha256[:12]}"
    )
    artifact_uri = storage.join(model_prefix, TARBALL)
    report_prefix = storage.join(model_prefix, "runs", request.run_id)
    progress(f"publishing to {model_prefix}")
    storage.write_bytes(artifact_uri, pack(request.model_dir), "application/gzip")
    published = [_publish(path, report_prefix) for path in written]
    registered = None
    if registry is not None and request.serving_image:
        progress(f"registering into {registry.group} as {status}")
        try:
            registered = registry.register(
                serving_image=request.serving_image,
                model_data_url=artifact_uri,
                evaluation_url=storage.join(report_prefix, "evaluation.json"),
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
                    "model_card": storage.join(report_prefix, "model_card.md"),
                    "report": report_prefix,
                    "scikit_learn": metadata.library_versions.get("scikit-learn", ""),
                    "mlflow_run_id": tracked.run_id if tracked is not None else "",
                    "mlflow_tracking_uri": tracked.target.shown if tracked is not None else "",
                },
                commit=request.git_commit,
            )
        except Exception:
            # Nothing may point at this run's report now: leave no orphans behind.
            for uri in published:
                storage.delete(uri)
            raise
        version, approval = str(registered.version), registered.approval_status
    else:
        version, approval = "not registered", "not registered: no model package group given"
    final_card = card(version, approval)
    _publish(final_card, report_prefix)
    track_card(
        final_card,
        {
            "mlstack.registered": "yes" if registered else "no",
            "mlstack.model_package_arn": registered.arn if registered else "",
            "mlstack.model_package_version": version if registered else "",
            "mlstack.approval_status": registered.approval_status if registered else "",
            "mlstack.artifact": artifact_uri,
        },
    )
    result = outcome(report / "model_card.md", registered, artifact_uri)
    if not gate.passed:
        raise GateRefusedError(gate, result)
    return result


def _check_inputs_exist(request: TrainingRequest) -> None:
    if not storage.exists(request.data_uri):
        raise InputError(f"data file {request.data_uri} does not exist")
    if not storage.exists(request.spec_uri):
        raise InputError(
            f"dataset spec {request.spec_uri} does not exist; allowed: a dataset.yaml beside the "
            "data file, or --spec"
        )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _publish(path: Path, prefix: str) -> str:
    uri = storage.join(prefix, path.name)
    storage.write_bytes(uri, path.read_bytes(), _content_type(path))
    return uri


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
        "mlflow_run_id": outcome.mlflow_run_id,
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
