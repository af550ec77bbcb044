"""Physical names that are contracts, built in one place.

Everything else is auto-named by Pulumi. These names are known to code outside the stack
(training registers into the model package group; people and tools find the key by its alias).
"""


def kms_alias(environment: str) -> str:
    """The alias of an environment's KMS key."""
    return f"alias/mlstack-{environment}"


WORKLOAD_NAMESPACE = "mlstack"
"""The Kubernetes namespace the training and serving workloads run in."""
TRAINING_SERVICE_ACCOUNT = "training"
SERVING_SERVICE_ACCOUNT = "serving"
DRIFT_SERVICE_ACCOUNT = "drift"
SCORING_SERVICE_ACCOUNT = "scoring"
"""Batch scoring Jobs (`mlstack score --on kubernetes`): the data bucket, and models to read."""
IMAGES = ("training", "serving")
"""The images the stack builds, each from `<image>/Dockerfile`, into its own repository."""
BUILD_CACHE_TAG = "buildcache"
"""The one tag each image repository lets a push replace: the registry build cache."""


def cluster_name(environment: str) -> str:
    """The EKS cluster's name: kubeconfigs, `aws eks` commands and its log group use it."""
    return f"mlstack-{environment}"


def training_data_uri(data_bucket: str, model: str) -> str:
    """Where a model's training data is: one data file and its dataset.yaml, wherever it trains."""
    return f"s3://{data_bucket}/{model}/"


def models_uri(models_bucket: str) -> str:
    """The prefix every run publishes its artifacts under, wherever it trains."""
    return f"s3://{models_bucket}/models"


def model_artifacts_uri(models_bucket: str, model: str) -> str:
    """Where every version of `model` keeps its artifacts (training publishes under
    `<models_uri>/<model>/<data>-<model sha>/`)."""
    return f"{models_uri(models_bucket)}/{model}/"


def model_package_group(model: str, environment: str) -> str:
    """The SageMaker model package group that versions of `model` register into."""
    return f"{model}-{environment}"


MODEL_PACKAGE_GROUP_TAG = "mlstack:model-package-group"
"""Tag every model package group carries, its value the group's name: how a later deployment
finds a group that `pulumi destroy` kept (the tagging API lists tagged resources only)."""


def model_package_group_arn(*, partition: str, region: str, account_id: str, group: str) -> str:
    """The ARN SageMaker gives a model package group, known before the group exists.

    IAM policies of the roles that use a group are written from it, so the group's own resource
    policy can name those roles without a dependency cycle.
    """
    return f"arn:{partition}:sagemaker:{region}:{account_id}:model-package-group/{group}"


def mlflow_tracking_server_name(environment: str) -> str:
    """The environment's SageMaker managed MLflow tracking server: part of its ARN, which is
    the tracking URI training uses, and what people pick in SageMaker Studio."""
    return f"mlstack-{environment}"


MLFLOW_ARTIFACT_PREFIX = "mlflow"
"""Where in the models bucket the tracking server keeps its runs' artifacts."""


ENDPOINT_VARIANT = "primary"
"""The one production variant of each SageMaker endpoint; its alarms name it."""


AUTONAME_SUFFIX = 8
"""What Pulumi's auto-naming adds to a resource's name: '-' and seven random characters."""
NAME_LIMITS = (
    ("an IAM role", 64, "endpoint-{model}-execution", AUTONAME_SUFFIX),
    ("a SageMaker endpoint configuration", 63, "endpoint-{model}-config", AUTONAME_SUFFIX),
    ("a Kubernetes CronJob", 52, "training-{model}", 0),
)
"""The longest names the stack makes from a model's name, with the limit of what each names
(a CronJob's 52 leaves room for the 11 characters its Jobs add); tests/infra run the program
with the longest model name allowed and check every name it declares against them."""
MAX_MODEL_NAME = min(
    limit - len(template.format(model="")) - suffix for _, limit, template, suffix in NAME_LIMITS
)


def endpoint_name(model: str, environment: str) -> str:
    """A SageMaker endpoint's name, stable across model versions: a new version updates the
    endpoint in place, so clients and alarms never change."""
    return f"{model}-{environment}"


def endpoint_log_group(endpoint: str) -> str:
    """Where SageMaker writes an endpoint's container logs."""
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def audit_log_group(environment: str) -> str:
    """The environment's audit log: a fixed name, so operators find it without the stack's
    outputs during an incident."""
    return f"/mlstack/{environment}/audit"


ENDPOINT_CAPTURE_PREFIX = "sagemaker"
"""Where in the capture bucket endpoints write: `<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/`."""
KUBERNETES_CAPTURE_PREFIX = "kubernetes"
"""Where the cluster's serving writes its capture, in the same layout, under the same endpoint
name (`endpoint_name`), so one drift job reads both."""


CI_ROLE_PURPOSES = ("preview", "platform", "workloads")
"""The roles GitHub Actions assumes in each environment: previews and drift checks read; the
platform and workloads deploys each change their own layer."""


def ci_role_name(environment: str, purpose: str) -> str:
    """The role GitHub Actions assumes for `purpose` (of CI_ROLE_PURPOSES) in an environment.

    Fixed, so the deploy roles' own policies can deny changes to every CI role by ARN without a
    dependency cycle, and so people recognise them in CloudTrail."""
    if purpose not in CI_ROLE_PURPOSES:
        raise ValueError(f"purpose = {purpose!r}: allowed: {', '.join(CI_ROLE_PURPOSES)}")
    return f"mlstack-{environment}-ci-{purpose}"


def runner_project_name(environment: str) -> str:
    """The CodeBuild project whose runners take the environment's GitHub Actions jobs inside its
    VPC: a workflow sends a job there with `runs-on: codebuild-<this>-<run id>-<attempt>`."""
    return f"mlstack-{environment}-runner"


def runner_label(environment: str) -> str:
    """The `runs-on` label of a job for the environment's runner, as a workflow writes it."""
    return (
        f"codebuild-{runner_project_name(environment)}"
        "-${{ github.run_id }}-${{ github.run_attempt }}"
    )


def role_boundary_name(environment: str) -> str:
    """The managed policy every role of the stack carries as its permissions boundary (with CI
    roles): its ARN is known before it exists, as the deploy role's conditions need."""
    return f"mlstack-{environment}-role-boundary"


def monitoring_name(environment: str) -> str:
    """The name of the environment's dashboard and budget, which the deploy role is scoped to."""
    return f"mlstack-{environment}"
