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
    REJECTED,
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
from training.tracking import (
    RunTracker,
    TrackedRun,
    TrackingError,
    TrackingTarget,
    UntrackedRun,
)


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
    tracker = _start_tracking(request, progress)
    try:
        outcome = _train(request, registry, tracker, progress)
    except BaseException as error:
        # After the server itself failed, asking it to record the failure would only wait.
        if not isinstance(error, TrackingError):
            failure = {"mlstack.error": str(error)[:5000]}
            _late(progress, lambda: tracker.set_tags(failure))
            _late(progress, lambda: tracker.end(succeeded=False))
        raise
    _late(progress, lambda: tracker.end(succeeded=True))
    return outcome


def _start_tracking(request: TrainingRequest, progress: Progress) -> RunTracker:
    """An MLflow run when a tracking URI is given, started before any work so that a server
    which cannot be used stops the run at once; otherwise a tracker that records nothing."""
    target = request.tracking
    if target is None:
        return UntrackedRun()
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


@dataclass(frozen=True)
class _Verdict:
    """The quality gate's decision and the approved version it compared against, if any."""

    gate: GateDecision
    approved: ModelPackage | None
    approved_metrics: dict[str, float] | None


@dataclass(frozen=True)
class _Report:
    """The report files this run wrote (the card comes later: it names the version)."""

    directory: Path
    plots: tuple[Path, ...]
    files: tuple[Path, ...]
    """The plots, the evaluation, the baseline statistics and the spec: what gets published."""


@dataclass(frozen=True, kw_only=True)
class _Candidate:
    """The version this run made, before anything about it is published."""

    data: datasets.Dataset
    trained: TrainedModel
    verdict: _Verdict
    metadata: ModelMetadata
    report: _Report


@dataclass(frozen=True)
class _Published:
    """Where the model and this run's report went, so a failed registration can take the
    report back and the registered version can point at both."""

    artifact_uri: str
    report_prefix: str
    report_uris: tuple[str, ...]


def _train(
    request: TrainingRequest,
    registry: ModelRegistry | None,
    tracker: RunTracker,
    progress: Progress,
) -> TrainingOutcome:
    """The run's phases in order: everything that can refuse the version comes before anything
    is published, and a version the gate refused is registered only as Rejected, if at all."""
    spec, data = _read_and_validate(request, progress)
    # Statistics that cannot be recorded refuse the run like bad data: before any fitting.
    baseline = baseline_statistics(data.features, spec.features)
    tracker.log_params(_input_params(request, spec, data))
    trained = _fit(request, spec, data, progress)
    verdict = _evaluate_and_gate(request, registry, spec, trained, progress)
    metadata = _package_model(request, spec, data, trained, baseline)
    report = _write_report(request.report_dir, spec, trained, verdict, baseline)
    _track_results(tracker, trained, verdict, report)
    candidate = _Candidate(
        data=data, trained=trained, verdict=verdict, metadata=metadata, report=report
    )
    if not (verdict.gate.passed or request.gate.keep_rejected):
        refused = "not registered: the quality gate refused it"
        raise GateRefusedError(verdict.gate, _unpublished(candidate, tracker, progress, refused))
    if not request.models_uri:
        unplaced = "not registered: no models location given"
        return _unpublished(candidate, tracker, progress, unplaced)
    outcome = _publish_and_register(
        request, request.models_uri, registry, candidate, tracker, progress
    )
    if not verdict.gate.passed:
        raise GateRefusedError(verdict.gate, outcome)
    return outcome


def _read_and_validate(
    request: TrainingRequest, progress: Progress
) -> tuple[DatasetSpec, datasets.Dataset]:
    """The spec and the data checked against it: a dataset that does not match refuses the
    run before any time goes into training."""
    progress(f"reading {request.data_uri} and {request.spec_uri}")
    spec = load_spec(storage.read_bytes(request.spec_uri).decode("utf-8"))
    raw = storage.read_bytes(request.data_uri)
    progress(f"validating {len(raw):,} bytes against the spec")
    return spec, datasets.load(raw, request.data_uri, spec)


def _input_params(
    request: TrainingRequest, spec: DatasetSpec, data: datasets.Dataset
) -> dict[str, Any]:
    """What the run was asked to do and on which data, tracked before fitting so that a run
    that fails later still says what it was."""
    return {
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


def _fit(
    request: TrainingRequest, spec: DatasetSpec, data: datasets.Dataset, progress: Progress
) -> TrainedModel:
    """The seeded fit, announced first: it is the step that takes the time."""
    progress(f"fitting {request.hyperparameters.algorithm} on {data.rows:,} rows")
    return train(data, spec.features, spec.task, request.hyperparameters)


def _evaluate_and_gate(
    request: TrainingRequest,
    registry: ModelRegistry | None,
    spec: DatasetSpec,
    trained: TrainedModel,
    progress: Progress,
) -> _Verdict:
    """Score the approved version on this run's hold-out set and let the gate decide, before
    anything is written, so the report can say what the version was compared with."""
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
    return _Verdict(gate, approved, approved_metrics)


def _package_model(
    request: TrainingRequest,
    spec: DatasetSpec,
    data: datasets.Dataset,
    trained: TrainedModel,
    baseline: dict[str, Any],
) -> ModelMetadata:
    """Write the model directory serving loads: the pipeline, its metadata and, when it
    compiles, the fast path checked against scikit-learn."""
    described = _describe_model(request, spec, data, trained, baseline)
    # Checked against scikit-learn on probe rows and on this run's hold-out rows (it only
    # compiles all-numeric pipelines, whose hold-out matrix is float).
    numeric = all(f.type == "numeric" for f in described.features)
    compiled = compile_pipeline(
        trained.pipeline, described, trained.holdout.features if numeric else None
    )
    return write_model_dir(
        request.model_dir,
        trained.pipeline,
        described,
        compiled.to_bytes() if compiled is not None else None,
    )


def _describe_model(
    request: TrainingRequest,
    spec: DatasetSpec,
    data: datasets.Dataset,
    trained: TrainedModel,
    baseline: dict[str, Any],
) -> ModelMetadata:
    """The metadata a served model carries: its inputs with their training ranges, its
    metrics and its lineage (data, code, image, libraries)."""
    return ModelMetadata(
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


def _write_report(
    directory: Path,
    spec: DatasetSpec,
    trained: TrainedModel,
    verdict: _Verdict,
    baseline: dict[str, Any],
) -> _Report:
    """The plots, the evaluation, the baseline statistics drift is checked against and the
    spec: written whatever the gate decided, so a refused version can be reviewed too."""
    directory.mkdir(parents=True, exist_ok=True)
    plots = evaluation_plots(
        directory, spec.task, trained.pipeline, trained.holdout.features, trained.holdout.target
    )
    files = (
        *plots,
        _write(
            directory / "evaluation.json", strict_json(_evaluation(spec, trained, verdict)) + "\n"
        ),
        _write(directory / "baseline_statistics.json", strict_json(baseline) + "\n"),
        _write(directory / "dataset_spec.yaml", dump_spec(spec)),
    )
    return _Report(directory, tuple(plots), files)


def _evaluation(spec: DatasetSpec, trained: TrainedModel, verdict: _Verdict) -> dict[str, Any]:
    """evaluation.json: the metrics, what they were compared with and the gate's reasons."""
    return {
        "task": spec.task,
        "primary_metric": verdict.gate.metric,
        "metrics": trained.metrics,
        "baseline_metrics": trained.baseline_metrics,
        "approved_version": verdict.approved.arn if verdict.approved else None,
        "approved_metrics": verdict.approved_metrics,
        "gate": {"passed": verdict.gate.passed, "reasons": list(verdict.gate.reasons)},
        "holdout_rows": len(trained.holdout.target),
    }


def _track_results(
    tracker: RunTracker, trained: TrainedModel, verdict: _Verdict, report: _Report
) -> None:
    """Metrics, report and the gate's decision into the tracked run before anything is
    published: a server that fails here fails the run while nothing is registered yet."""
    tracker.log_params(
        {"data.holdout_rows": len(trained.holdout.target), "classes": ",".join(trained.classes)}
    )
    tracker.log_metrics(
        {
            **trained.metrics,
            **{f"baseline_{k}": v for k, v in trained.baseline_metrics.items()},
            **{f"approved_{k}": v for k, v in (verdict.approved_metrics or {}).items()},
        }
    )
    tracker.log_files(report.files)
    tracker.set_tags({"mlstack.gate": "passed" if verdict.gate.passed else "refused"})


def _unpublished(
    candidate: _Candidate, tracker: RunTracker, progress: Progress, approval: str
) -> TrainingOutcome:
    """The outcome of a version that stays local: its card says why it was not registered."""
    card = _write_card(candidate, tracker, "not registered", approval)
    _track_card(tracker, progress, card, {"mlstack.registered": "no"})
    return _outcome(candidate, tracker, card)


def _publish_and_register(
    request: TrainingRequest,
    models_uri: str,
    registry: ModelRegistry | None,
    candidate: _Candidate,
    tracker: RunTracker,
    progress: Progress,
) -> TrainingOutcome:
    """Publish the model and report, register the version, then publish the card that names
    the version the registry gave it."""
    published = _publish_version(request, models_uri, candidate, progress)
    registered = _register(request, registry, candidate, published, tracker, progress)
    if registered is not None:
        version, approval = str(registered.version), registered.approval_status
    else:
        version, approval = "not registered", "not registered: no model package group given"
    card = _write_card(candidate, tracker, version, approval)
    _publish(card, published.report_prefix)
    tags = _registration_tags(registered, published.artifact_uri)
    _track_card(tracker, progress, card, tags)
    return _outcome(candidate, tracker, card, registered, published.artifact_uri)


def _publish_version(
    request: TrainingRequest, models_uri: str, candidate: _Candidate, progress: Progress
) -> _Published:
    """Upload the model under a content address and the report under this run's prefix."""
    metadata = candidate.metadata
    # The model is content-addressed: the same data and model publish the same bytes to the same
    # key, which a later run of the same model reuses. The report belongs to this run alone.
    model_prefix = storage.join(
        models_uri,
        metadata.model_name,
        f"{candidate.data.sha256[:12]}-{metadata.model_sha256[:12]}",
    )
    artifact_uri = storage.join(model_prefix, TARBALL)
    report_prefix = storage.join(model_prefix, "runs", request.run_id)
    progress(f"publishing to {model_prefix}")
    storage.write_bytes(artifact_uri, pack(request.model_dir), "application/gzip")
    report_uris = tuple(_publish(path, report_prefix) for path in candidate.report.files)
    return _Published(artifact_uri, report_prefix, report_uris)


def _register(
    request: TrainingRequest,
    registry: ModelRegistry | None,
    candidate: _Candidate,
    published: _Published,
    tracker: RunTracker,
    progress: Progress,
) -> RegisteredVersion | None:
    """Register the published model as a version of the group; None when no group is given."""
    if registry is None or not request.serving_image:
        return None
    status = _approval_status(request.gate, candidate.verdict.gate)
    progress(f"registering into {registry.group} as {status}")
    try:
        return registry.register(
            serving_image=request.serving_image,
            model_data_url=published.artifact_uri,
            evaluation_url=storage.join(published.report_prefix, "evaluation.json"),
            approval_status=status,
            description=candidate.verdict.gate.summary,
            metrics=candidate.trained.metrics,
            lineage=_lineage(request, candidate, published, tracker),
            commit=request.git_commit,
        )
    except Exception:
        # Nothing may point at this run's report now: leave no orphans behind.
        for uri in published.report_uris:
            storage.delete(uri)
        raise


def _approval_status(settings: GateSettings, gate: GateDecision) -> str:
    """A refused version kept for review is Rejected; a passing one waits for approval unless
    the stack approves passing versions itself."""
    if not gate.passed:
        return REJECTED
    return APPROVED if settings.auto_approve else PENDING


def _lineage(
    request: TrainingRequest, candidate: _Candidate, published: _Published, tracker: RunTracker
) -> dict[str, str]:
    """Where the version came from, on the registered version itself: data, code, image,
    report and tracked run (an empty value is left off)."""
    metadata = candidate.metadata
    return {
        "data_sha256": candidate.data.sha256,
        "data_uri": request.data_uri,
        "git_commit": request.git_commit,
        "image_digest": request.image_digest,
        "model_sha256": metadata.model_sha256,
        "algorithm": metadata.algorithm,
        "model_card": storage.join(published.report_prefix, "model_card.md"),
        "report": published.report_prefix,
        "scikit_learn": metadata.library_versions.get("scikit-learn", ""),
        "mlflow_run_id": tracker.run_id or "",
        "mlflow_tracking_uri": tracker.shown_uri or "",
    }


def _registration_tags(registered: RegisteredVersion | None, artifact_uri: str) -> dict[str, str]:
    """The tracked run's pointers to the version it produced (an empty value is left off)."""
    return {
        "mlstack.registered": "yes" if registered else "no",
        "mlstack.model_package_arn": registered.arn if registered else "",
        "mlstack.model_package_version": str(registered.version) if registered else "",
        "mlstack.approval_status": registered.approval_status if registered else "",
        "mlstack.artifact": artifact_uri,
    }


def _write_card(candidate: _Candidate, tracker: RunTracker, version: str, approval: str) -> Path:
    """model_card.md, written last because it names the version and its registry status."""
    trained, verdict = candidate.trained, candidate.verdict
    return _write(
        candidate.report.directory / "model_card.md",
        model_card(
            candidate.metadata,
            version=version,
            rows=candidate.data.rows,
            holdout_rows=len(trained.holdout.target),
            baseline_metrics=trained.baseline_metrics,
            approved_metrics=verdict.approved_metrics,
            gate=verdict.gate,
            approval_status=approval,
            plots=[p.name for p in candidate.report.plots],
            mlflow_run=tracker.run_id,
        ),
    )


def _track_card(tracker: RunTracker, progress: Progress, card: Path, tags: dict[str, str]) -> None:
    """The card and the final tags into the tracked run; the outcome is decided by now, so a
    failure here only warns."""
    _late(progress, lambda: tracker.log_files([card]))
    _late(progress, lambda: tracker.set_tags(tags))


def _outcome(
    candidate: _Candidate,
    tracker: RunTracker,
    card: Path,
    registered: RegisteredVersion | None = None,
    artifact_uri: str | None = None,
) -> TrainingOutcome:
    files = tuple(sorted([*candidate.report.files, card]))
    return TrainingOutcome(
        candidate.metadata, candidate.verdict.gate, registered, artifact_uri, files, tracker.run_id
    )


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
