"""The ScalingSweep manifest as pydantic models: a sweep file is the custom resource `kubectl apply` takes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, StrictBool, Tag, ValidationError, field_validator,
                      model_validator)
from pydantic.alias_generators import to_camel

from ff_core.errors import SpecError
from ff_core.schedules import COOLDOWN_FRACTION, COOLDOWN_SHAPE, NAMES as SCHEDULE_NAMES, SCHEDULES

API_VERSION = "flopsfit.dev/v1alpha1"
KIND = "ScalingSweep"
# Job names are <sweep>-<experiment id>-a<attempt> and must fit 63 characters.
MAX_NAME_LENGTH = 40
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PLUGIN_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
# A Kubernetes resource quantity (8, 500m, 64Gi, 1.5e3) and an S3 bucket name, as the API server and S3 check them.
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_sweep_name_syntax(name: str) -> bool:
    """Whether `name` could be a sweep's metadata.name (a DNS label of at most MAX_NAME_LENGTH characters)."""
    return bool(_DNS_LABEL.match(name)) and len(name) <= MAX_NAME_LENGTH


class _Model(BaseModel):
    """camelCase on the wire (Kubernetes convention), snake_case in Python; unknown fields are errors, and so
    are inf and nan where a number is expected (JSON has neither; the API server would refuse them)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info) -> Any:
        """true/false where a number is expected is an error, as the API server's `type: number` makes it
        (pydantic alone would read true as 1)."""
        field = cls.model_fields.get(info.field_name)
        if field is not None and _takes_numbers(field.annotation):
            flags = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, bool)]
            if flags:
                raise ValueError(f"a number is expected, not {str(flags[0]).lower()}")
        return value


def _takes_numbers(annotation) -> bool:
    """int, float, and their optional and list forms (not bool, nor a union that also takes something else)."""
    if annotation in (int, float):
        return True
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is list:
        return len(args) == 1 and _takes_numbers(args[0])
    return bool(args) and all(_takes_numbers(a) for a in args)


class PluginRef(_Model):
    """A user plugin named by import path, and the keyword arguments it is built with."""

    plugin: str = Field(description='import path "package.module:Name"')
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("plugin")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not PLUGIN_PATH.match(value):
            raise ValueError(
                f'{value!r} is not an import path; write it as "package.module:Name", '
                'e.g. "ff_plugins.gpt:GPT"'
            )
        return value


class SizeEntry(_Model):
    """One member of the model-size family: the plugin's size knobs and the parameter count they give."""

    name: str
    knobs: dict[str, Any] = Field(default_factory=dict)
    n_params: int | None = Field(default=None, gt=0)
    flops_per_token: float | None = Field(default=None, gt=0)

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 30:
            raise ValueError(
                f"{value!r} must be lowercase letters, digits and '-', at most 30 characters"
            )
        return value


class TokensPerParam(_Model):
    """The window of tokens-per-parameter (D/N) a planned experiment may have."""

    min: float = Field(default=1.0, gt=0)
    max: float = Field(default=1000.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> TokensPerParam:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self


RATE, LAW = "rate", "law"  # the two forms of training.learningRate (tags: errors name only the form given)


def _rate_or_law(value: Any) -> str:
    return LAW if isinstance(value, dict | BaseModel) else RATE


class LearningRateLaw(_Model):
    """A learning rate per point, LR = c N^(nExponent + nExponentSlope ln(D/N)) D^dExponent (N the size's nParams,
    D the experiment's tokens): what `ffctl transfer --data` fits from a learning-rate grid and prints as this.
    Step Law's lr* = c N^a D^b has nExponentSlope 0; a grid whose exponent of N moves with D/N (not separable)
    gets the slope of that move."""

    law: Literal["power"] = "power"
    c: float = Field(gt=0)
    n_exponent: float = 0.0
    d_exponent: float = 0.0
    n_exponent_slope: float = Field(default=0.0, description="the exponent of N gains this per unit of ln(D/N)")

    def at(self, n_params: float, tokens: float) -> float:
        exponent = self.n_exponent + self.n_exponent_slope * math.log(tokens / n_params)
        return self.c * n_params**exponent * tokens**self.d_exponent


class Training(_Model):
    """Optimisation knobs shared by every experiment of the sweep."""

    global_batch_tokens: int = Field(default=8192, gt=0)
    sequence_length: int = Field(default=128, gt=0)
    micro_batch_size: int | None = Field(default=None, gt=0, description="sequences per forward pass")
    learning_rate: Annotated[Annotated[Annotated[float, Field(gt=0, le=1.0)], Tag(RATE)]
                             | Annotated[LearningRateLaw, Tag(LAW)], Discriminator(_rate_or_law)] = Field(
        default=1e-3, description=(
        "a number, or a law of each point: {law: power, c, nExponent, dExponent, nExponentSlope} (LR = c "
        "N^(nExponent + nExponentSlope ln(D/N)) D^dExponent)"))
    warmup_fraction: float = Field(default=0.05, ge=0, lt=1)
    warmup_tokens: int | None = Field(default=None, ge=0, description=(
        "warmup length in tokens, the same for every token count (overrides warmupFraction); schedule wsd needs it"))
    schedule: Literal[SCHEDULE_NAMES] = "cosine"  # ff_core.schedules
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    cooldown_fraction: float = Field(default=COOLDOWN_FRACTION, gt=0, lt=1, description=(
        "schedule wsd: the share of each run's steps spent cooling the learning rate down to 0"))
    cooldown_shape: Literal["linear", "1-sqrt"] = Field(default=COOLDOWN_SHAPE,
                                                        description="schedule wsd: the cooldown's shape")
    weight_decay: float = Field(default=0.1, ge=0)
    grad_clip: float | None = Field(default=1.0, gt=0)
    seed: int = Field(default=0, ge=0)
    eval_tokens: int = Field(default=65536, gt=0)
    log_points: int = Field(default=50, ge=2, description="points kept on the loss curve")
    checkpoint_every_steps: int = Field(default=500, gt=0)
    compile: StrictBool = Field(default=False, description="torch.compile the model (GPU runs)")
    fused_readout: StrictBool = Field(default=False, description=(
        "the readout and cross-entropy taken chunk by chunk, never holding all the logits: far less memory at "
        "large vocabularies (a model with features() and readout(), the built-in cross-entropy loss)"))
    deterministic: StrictBool = Field(default=False, description="deterministic kernels only (slower; for checks)")

    @model_validator(mode="after")
    def _batch_divides(self) -> Training:
        if self.global_batch_tokens % self.sequence_length:
            raise ValueError(
                f"globalBatchTokens ({self.global_batch_tokens}) must be a multiple of "
                f"sequenceLength ({self.sequence_length})"
            )
        return self

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _rate_not_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):  # the rate-or-law union hides this field from _numbers_are_not_booleans
            raise ValueError(f"a number is expected, not {str(value).lower()}")
        return value

    @model_validator(mode="after")
    def _one_rate_per_trunk(self) -> Training:
        law = self.learning_rate
        if isinstance(law, LearningRateLaw) and SCHEDULES[self.schedule].trunks:
            for name, value in (("dExponent", law.d_exponent), ("nExponentSlope", law.n_exponent_slope)):
                if value:
                    raise ValueError(f"schedule {self.schedule} trains one trunk per size for every token count, so "
                                     f"its learning rate cannot depend on D: set learningRate.{name} 0 (it is "
                                     f"{value:g}), or use schedule cosine")
        return self

    def at(self, n_params: float, tokens: float) -> Training:
        """These knobs for one point: its own learning rate where learningRate is a law."""
        if not isinstance(self.learning_rate, LearningRateLaw):
            return self
        return self.model_copy(update={"learning_rate": self.learning_rate.at(n_params, tokens)})

    @model_validator(mode="after")
    def _wsd_warmup(self) -> Training:
        if SCHEDULES[self.schedule].trunks and self.warmup_tokens is None:
            raise ValueError(
                f"schedule {self.schedule} needs warmupTokens: the runs of one size share their warmup and constant "
                "phase, so the warmup cannot be a fraction of each run's length (e.g. warmupTokens: 5% of the smallest "
                "token count)")
        return self

    @property
    def global_batch_sequences(self) -> int:
        return self.global_batch_tokens // self.sequence_length

    def warmup_steps(self, steps: int) -> int:
        """Optimizer steps of warmup in a run of `steps` steps."""
        if self.warmup_tokens is not None:
            return math.ceil(self.warmup_tokens / self.global_batch_tokens)
        return math.ceil(self.warmup_fraction * steps)

    def log_every(self, steps: int) -> int:
        """Steps between loss-curve points. WSD runs log on a grid that does not depend on their length (the
        warmup's), so a branch's curve is the same as an uninterrupted run's; the record keeps logPoints."""
        if SCHEDULES[self.schedule].trunks:
            return max(1, self.warmup_steps(steps))
        return max(1, steps // self.log_points)

    def cooldown_start(self, steps: int) -> int:
        """schedule wsd: the step where a run of `steps` steps leaves its trunk (constant LR) and cools down."""
        return steps - max(1, round(self.cooldown_fraction * steps))

    def unused(self) -> set[str]:
        """Fields (python names) that do not change what this schedule computes: left out of experiment ids,
        so adding a knob never changes the ids of sweeps that do not use it."""
        unused = set(SCHEDULES[self.schedule].ignores)
        if self.warmup_tokens is None:
            unused.add("warmup_tokens")
        else:
            unused.add("warmup_fraction")
        return unused

    def batch_split(self, processes: int) -> tuple[int, int]:
        """(sequences per micro-batch, accumulation steps) of each of `processes` processes; ValueError saying
        what to change when the global batch does not split that way."""
        share, rem = divmod(self.global_batch_sequences, processes)
        if rem or not share:
            raise ValueError(f"the global batch of {self.global_batch_sequences} sequences (globalBatchTokens / "
                             f"sequenceLength) does not split over {processes} processes; change globalBatchTokens "
                             "or the number of processes (execution.gpusPerExperiment x nodesPerExperiment)")
        micro = min(self.micro_batch_size or share, share)
        if share % micro:
            raise ValueError(f"microBatchSize {micro} must divide the per-process batch of {share} sequences")
        return micro, share // micro


class Storage(_Model):
    """Where checkpoints and result records go: file://path or s3://bucket/prefix."""

    uri: str = "file://./ff-results"
    endpoint_url: str | None = Field(default=None, alias="endpointURL")
    folder: str | None = Field(default=None, description=(
        "the folder under uri that holds this sweep's results (default: metadata.name); a sweep that grows another "
        "(more budgets or sizes) names the other's folder, so the points they share are trained once and "
        "analysed together"))

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        if value is not None and not is_sweep_name_syntax(value):
            raise ValueError(f"{value!r} must be a sweep name: lowercase letters, digits and '-', at most "
                             f"{MAX_NAME_LENGTH} characters")
        return value

    @field_validator("uri")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not (value.startswith("file://") or value.startswith("s3://")):
            raise ValueError(f"{value!r} must start with file:// or s3://")
        bucket = value[len("s3://"):].split("/")[0] if value.startswith("s3://") else None
        if bucket is not None and not _BUCKET.match(bucket):
            raise ValueError(f"{value!r}: {bucket!r} is not an S3 bucket name (3-63 lowercase letters, digits, "
                             "dots and hyphens, starting and ending with a letter or digit)")
        return value


# A label or annotation key (an optional DNS-subdomain prefix and "/", then a name of at most 63 characters), a
# label value, and the key prefix the operator keeps for its own labels and annotations.
QUALIFIED_KEY = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                 r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
RESERVED_PREFIX = "flopsfit.dev/"
MAX_POD_METADATA = 64  # labels, and annotations, a podTemplate may add (bounds the CRD's CEL rule's cost too)


class Toleration(_Model):
    """A pod toleration, as Kubernetes spells it."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class PodTemplateMetadata(_Model):
    """Labels and annotations added to every trainer pod (Kueue's topology annotations among them:
    kueue.x-k8s.io/podset-required-topology or -preferred-topology, which Kueue reads from the pod template)."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _keys(self) -> PodTemplateMetadata:
        for kind, entries in (("label", self.labels), ("annotation", self.annotations)):
            for key in entries:
                if not re.match(QUALIFIED_KEY, key) or len(key.split("/")[0]) > 253:
                    raise ValueError(f"{kind} key {key!r} is not a Kubernetes qualified name ([prefix/]name, the "
                                     "name at most 63 letters, digits, '-', '_' or '.')")
                if key.startswith(RESERVED_PREFIX):
                    raise ValueError(f"{kind} key {key!r}: the {RESERVED_PREFIX} prefix is the operator's own (it "
                                     "finds its Jobs and pods by it); use another prefix")
        for kind, entries in (("labels", self.labels), ("annotations", self.annotations)):
            if len(entries) > MAX_POD_METADATA:
                raise ValueError(f"{len(entries)} {kind}: a podTemplate adds at most {MAX_POD_METADATA}")
        for key, value in self.labels.items():
            if not re.match(LABEL_VALUE, value):
                raise ValueError(f"label {key}: value {value!r} is not a label value (at most 63 letters, digits, "
                                 "'-', '_' or '.', starting and ending with a letter or digit)")
        return self


class PodTemplateSpec(_Model):
    """Where trainer pods may run: merged with execution.nodeSelector, tolerations and priorityClassName."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    priority_class_name: str | None = None


class PodTemplate(_Model):
    """What the trainer pods carry beyond the operator's own: metadata and placement, passed through as given."""

    metadata: PodTemplateMetadata = Field(default_factory=PodTemplateMetadata)
    spec: PodTemplateSpec = Field(default_factory=PodTemplateSpec)


class Execution(_Model):
    """How a cluster runs the sweep: concurrency, retries, the failure budget, and each Job's pod."""

    parallelism: int = Field(default=4, ge=1, description="experiments running at once")
    retries_per_experiment: int = Field(default=2, ge=0, description="new attempts after a retryable failure")
    max_failed_experiments: int | None = Field(default=None, ge=0, description="failure budget; none: no limit")
    failure_policy: Literal["LetFinish", "StopActive"] = "LetFinish"
    suspend: StrictBool = Field(default=False, description="plan only: create no Jobs until false again")
    image: str = "ghcr.io/flops-fit/trainer:0.1.0"
    gpus_per_experiment: int = Field(default=1, ge=0, description="GPUs per node (one torchrun worker each)")
    experiments_per_gpu: int = Field(default=1, ge=1, le=16, alias="experimentsPerGPU", description=(
        "experiments sharing one GPU: k trainer processes in one pod (a packed Job); small models leave a GPU "
        "mostly idle alone. Needs gpusPerExperiment <= 1 and nodesPerExperiment 1"))
    nodes_per_experiment: int = Field(default=1, ge=1, le=64,
                                      description="nodes per experiment; > 1: an Indexed Job plus a headless Service")
    cpu: str = "8"
    memory: str = "64Gi"
    service_account_name: str = "flops-fit-trainer"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    priority_class_name: str | None = None
    queue_name: str | None = Field(default=None, description="Kueue LocalQueue; Jobs are then created suspended")
    managed_by: Literal["kueue.x-k8s.io/multikueue"] | None = Field(default=None, description=(
        "the Jobs' spec.managedBy: on a MultiKueue manager cluster, Kueue runs them on a worker cluster and copies "
        "their status back (no pods here; state comes from Job status and the store). Needs queueName"))
    workload_priority_class: str | None = Field(default=None, description="Kueue WorkloadPriorityClass")
    s3_credentials_secret: str | None = Field(default=None, description="Secret with AWS_ACCESS_KEY_ID etc.")
    tracking_credentials_secret: str | None = Field(default=None, description=(
        "Secret with the tracking credentials (WANDB_API_KEY, MLFLOW_TRACKING_TOKEN or _USERNAME/_PASSWORD ...), "
        "put in every trainer's environment; never in the spec"))
    pod_template: PodTemplate = Field(default_factory=PodTemplate, description=(
        "labels, annotations (Kueue topology ones too), nodeSelector, tolerations and priorityClassName for every "
        "trainer pod"))
    active_deadline_seconds: int | None = Field(default=None, gt=0)
    ttl_seconds_after_finished: int = Field(
        default=86400, ge=600, description="seconds a finished Job is kept; at least 600, so that an operator "
        "restart does not miss its outcome (a Job removed while the operator is down would run again)")

    @model_validator(mode="after")
    def _packs_of_one_gpu(self) -> Execution:
        if self.experiments_per_gpu > 1 and (self.gpus_per_experiment > 1 or self.nodes_per_experiment > 1):
            raise ValueError(f"experimentsPerGPU {self.experiments_per_gpu} packs experiments of one GPU each; set "
                             "gpusPerExperiment 1 (or 0) and nodesPerExperiment 1, or experimentsPerGPU 1")
        return self

    @model_validator(mode="after")
    def _dispatchable(self) -> Execution:
        if self.managed_by and not self.queue_name:
            raise ValueError(f"managedBy {self.managed_by} needs queueName: MultiKueue dispatches only Jobs queued "
                             "in a LocalQueue of the manager cluster")
        if self.managed_by and (self.experiments_per_gpu > 1 or self.nodes_per_experiment > 1):
            raise ValueError(f"managedBy {self.managed_by}: a packed Job reports its members' exit codes in its pod, "
                             "and a multi-node one needs its headless Service, neither of which MultiKueue brings back "
                             "from the worker cluster; set experimentsPerGPU 1 and nodesPerExperiment 1")
        return self

    @model_validator(mode="after")
    def _one_placement(self) -> Execution:
        both = {k for k in self.node_selector.keys() & self.pod_template.spec.node_selector.keys()
                if self.node_selector[k] != self.pod_template.spec.node_selector[k]}
        if both:
            raise ValueError(f"nodeSelector {sorted(both)[0]!r} is given two values (in execution.nodeSelector and "
                             "execution.podTemplate.spec.nodeSelector); keep one")
        ours, theirs = self.priority_class_name, self.pod_template.spec.priority_class_name
        if ours and theirs and ours != theirs:
            raise ValueError(f"priorityClassName is {ours!r} in execution and {theirs!r} in its podTemplate; keep one")
        return self

    @property
    def pod_placement(self) -> dict[str, Any]:
        """nodeSelector, tolerations and priorityClassName of trainer pods: execution's and its podTemplate's."""
        tolerations = list(self.tolerations) + [t.model_dump(by_alias=True, exclude_none=True)
                                                for t in self.pod_template.spec.tolerations]
        placement = {"nodeSelector": self.node_selector | self.pod_template.spec.node_selector,
                     "tolerations": tolerations,
                     "priorityClassName": self.priority_class_name or self.pod_template.spec.priority_class_name}
        return {key: value for key, value in placement.items() if value}

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. cpu 8 or 500m, memory 64Gi)")
        return value

    @property
    def processes(self) -> int:
        """Trainer processes per experiment: one per GPU (one per node on CPUs), on every node."""
        return max(self.gpus_per_experiment, 1) * self.nodes_per_experiment


class MlflowTracking(_Model):
    """One MLflow run per experiment in `experiment` (default: the sweep's folder), tagged with the sweep."""

    tracking_uri: str = Field(alias="trackingURI", description="http(s)://server, sqlite:///path or databricks")
    experiment: str | None = Field(default=None, description="MLflow experiment [default: the sweep's folder]")


class WandbTracking(_Model):
    """One Weights & Biases run per experiment, grouped by the sweep."""

    project: str = Field(min_length=1)
    entity: str | None = None
    mode: Literal["online", "offline"] = "online"
    group: str | None = Field(default=None, description="W&B group [default: the sweep's folder]")


class TensorBoardTracking(_Model):
    """Event files under logDir/<sweep folder>/<experiment id>, one folder per run."""

    log_dir: str = Field(min_length=1, description="a local folder or s3://bucket/prefix")


class Tracking(_Model):
    """Experiment tracking: any of the three backends, each optional (its package is an extra). Not part of any
    experiment's identity: adding or changing it retrains nothing."""

    mlflow: MlflowTracking | None = None
    wandb: WandbTracking | None = None
    tensorboard: TensorBoardTracking | None = None

    @property
    def backends(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class Ladder(_Model):
    """An over-training ladder: each of its sizes also trained at D = M N for each token multiplier M (Gadre et
    al.'s M = 20, 80, 320 ...), beside the isoFLOP grid; `ffctl analyze` fits the over-training law to them."""

    token_multipliers: list[float] = Field(min_length=1, max_length=16, description=(
        "tokens per parameter M = D/N of each ladder run, e.g. [20, 80, 320]"))
    sizes: list[str] | None = Field(default=None, description="the sizes climbing it [default: every size]")

    @field_validator("token_multipliers")
    @classmethod
    def _positive_unique(cls, value: list[float]) -> list[float]:
        for i, m in enumerate(value):
            if not (m > 0 and math.isfinite(m)):
                raise ValueError(f"tokenMultipliers[{i}] is {m:g}; every multiplier M = D/N must be > 0")
        if len(set(value)) != len(value):
            raise ValueError("tokenMultipliers repeat a value; list each M once")
        return sorted(value)


class SweepSpec(_Model):
    """What to train: plugins, budgets, the size family and the training knobs."""

    model: PluginRef
    data: PluginRef
    loss: PluginRef = PluginRef(plugin="ff_plugins.losses:cross_entropy")
    flops: PluginRef | None = Field(
        default=None, description="optional: per-token training FLOPs for each size; fills sizes[].flopsPerToken"
    )
    budgets: list[float] = Field(min_length=1, description="compute budgets C in FLOPs")
    sizes: list[SizeEntry] = Field(min_length=1)
    points_per_budget: int = Field(default=5, ge=3, le=50)
    tokens_per_param: TokensPerParam = TokensPerParam()
    training: Training = Training()
    storage: Storage = Storage()
    execution: Execution = Execution()
    tracking: Tracking | None = Field(default=None, description="experiment tracking: MLflow, W&B, TensorBoard")
    ladder: Ladder | None = Field(default=None, description="over-training runs at token multipliers M = D/N")
    evaluation: PluginRef | None = Field(default=None, description=(
        "an eval plugin: task metrics (e.g. accuracy, log-likelihood of the right answer) at every checkpoint and "
        "at the end, written into each result record"))

    @field_validator("budgets")
    @classmethod
    def _positive_unique(cls, value: list[float]) -> list[float]:
        for i, budget in enumerate(value):
            if not budget > 0:
                raise ValueError(f"budgets[{i}] is {budget:g}; every budget must be > 0 FLOPs")
        if len(set(value)) != len(value):
            raise ValueError("budgets repeat a value; list each compute budget once")
        return value

    @field_validator("sizes")
    @classmethod
    def _unique_names(cls, value: list[SizeEntry]) -> list[SizeEntry]:
        names = [s.name for s in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"size names repeat: {', '.join(repeated)}; give each size its own name")
        seen: dict[str, str] = {}
        for size in value:
            key = json.dumps(size.knobs, sort_keys=True)
            if key in seen:
                raise ValueError(f"sizes {seen[key]} and {size.name} have the same knobs; give each size its own")
            seen[key] = size.name
        return value

    @model_validator(mode="after")
    def _ladder_sizes(self) -> SweepSpec:
        if self.ladder and self.ladder.sizes is not None:
            names = {s.name for s in self.sizes}
            unknown = [n for n in self.ladder.sizes if n not in names]
            if unknown:
                raise ValueError(f"ladder.sizes names {', '.join(unknown)}, not in sizes ({', '.join(sorted(names))})")
        return self

    @model_validator(mode="after")
    def _batch_splits(self) -> SweepSpec:
        try:
            self.training.batch_split(self.execution.processes)
        except ValueError as error:
            raise ValueError(f"training: {error}") from None
        return self


class Metadata(BaseModel):
    """The parts of Kubernetes object metadata a sweep uses; the rest is kept but ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    namespace: str | None = None

    @field_validator("namespace")
    @classmethod
    def _dns_namespace(cls, value: str | None) -> str | None:
        if value is not None and not (_DNS_LABEL.match(value) and len(value) <= 63):
            raise ValueError(f"{value!r} is not a namespace name (lowercase letters, digits and '-', at most 63)")
        return value

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not is_sweep_name_syntax(value):
            raise ValueError(
                f"{value!r} must be lowercase letters, digits and '-', starting and ending with "
                f"a letter or digit, at most {MAX_NAME_LENGTH} characters"
            )
        return value


class ScalingSweep(BaseModel):
    """A whole sweep file: a ScalingSweep custom resource."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)
    api_version: Literal["flopsfit.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ScalingSweep"]
    metadata: Metadata
    spec: SweepSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def folder(self) -> str:
        """Where the sweep's results live in its store: spec.storage.folder, else its name."""
        return self.spec.storage.folder or self.metadata.name

    def to_manifest(self, only_set: bool = False) -> dict[str, Any]:
        """The sweep as a plain manifest (camelCase, no status), ready for YAML or the API server.

        `only_set` leaves out what the file did not say (defaults), as `kubectl apply` of the file would.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=only_set,
                               exclude={"status"})


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for before, part in zip((None, *loc), loc):
        if before == "learningRate" and part in (RATE, LAW):
            continue  # the form's tag: the value's own path is what the user wrote
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: the field's path, what is wrong, and the value found."""
    lines = [f"{source}: invalid sweep ({error.error_count()} problem(s)):"]
    for item in error.errors():
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling (fields are camelCase)"
        elif item["type"] == "missing":
            msg = "required field is missing"
        shown = "" if item["type"] in ("missing", "extra_forbidden") else f" (got {item['input']!r})"
        if len(shown) > 80:
            shown = ""
        lines.append(f"  {_field_path(item['loc']) or '<root>'}: {msg}{shown}")
    return "\n".join(lines)


def manifest_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The manifest inside a ScalingSweep object read from the API server: its spec, name and namespace, without
    the status and the metadata the server adds (uid, resourceVersion, finalizers, ...)."""
    meta = obj["metadata"]
    return {k: obj[k] for k in ("apiVersion", "kind", "spec")} | {
        "metadata": {k: meta[k] for k in ("name", "namespace") if k in meta}}


def parse_sweep(data: Any, source: str = "sweep") -> ScalingSweep:
    """Validate a manifest (already parsed from YAML/JSON) into a ScalingSweep, or raise SpecError."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a ScalingSweep manifest (a mapping), got {type(data).__name__}")
    try:  # the wire names only (camelCase): a snake_case key is unknown to the API server, as here
        return ScalingSweep.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as error:
        raise SpecError(format_validation_error(error, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML with a key written twice in one mapping refused (PyYAML keeps the last silently; kubectl refuses)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"key {twice[0]!r} appears twice in one object")
    return dict(pairs)


def load_sweep(path: str | Path) -> ScalingSweep:
    """Read and validate a sweep file (YAML or JSON)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(f"{path}: cannot read the sweep file ({error.strerror})") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs) if path.suffix == ".json" else \
            yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, ValueError) as error:
        raise SpecError(f"{path}: not valid YAML/JSON: {error}") from None
    return parse_sweep(data, str(path))
