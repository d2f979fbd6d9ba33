"""The result record an experiment writes last (result.json): versioned, validated when read back."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ff_core.errors import StoreError

SCHEMA_VERSION = 1


class CurvePoint(BaseModel):
    """One point of the training-loss curve: after `tokens` tokens (step `step`), mean loss since the last."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    step: int
    tokens: int
    loss: float


class TaskPoint(BaseModel):
    """The eval plugin's metrics (spec.evaluation) after `tokens` tokens (step `step`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    step: int
    tokens: int
    metrics: dict[str, float]


class ResultRecord(BaseModel):
    """What one finished experiment reports; "has result.json" means "finished"."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = SCHEMA_VERSION
    sweep: str
    experiment: str
    budget: float = Field(gt=0)
    size: str
    knobs: dict[str, Any]
    n_params: int = Field(gt=0)
    n_params_non_embedding: int = Field(ge=0)
    tokens: int = Field(gt=0, description="tokens actually trained on (D)")
    unique_tokens: int | None = Field(default=None, description="distinct training tokens available (data size)")
    identity: dict[str, Any] | None = Field(default=None, description="everything the experiment id hashes "
                                            "(ff_core.plan.experiment_identity): its point and its recipe")
    untrained_loss: float | None = Field(default=None, description="the loss of a model that learned nothing (uniform "
                                         "over the data's alphabet, e.g. ln 256 for bytes), where the data plugin "
                                         "knows it")
    flops: dict[str, float] = Field(description="training FLOPs by counting method, e.g. {'6nd': ...}")
    branch_tokens: int | None = Field(default=None, description="schedule wsd: the tokens at which this run left its "
                                      "trunk (constant learning rate) to cool down; the trunk's training is shared")

    @field_validator("flops")
    @classmethod
    def _six_nd(cls, value: dict[str, float]) -> dict[str, float]:
        if not (value.get("6nd", 0) > 0 and math.isfinite(value["6nd"])):
            raise ValueError("needs a positive finite '6nd' count (every trainer writes one)")
        return value
    status: Literal["completed", "diverged"]
    final_loss: float | None = Field(description="mean training loss over the last logging interval")
    eval_loss: float | None = Field(description="loss on held-out data after training; None if diverged")
    loss_curve: list[CurvePoint]
    task_metrics: list[TaskPoint] | None = Field(default=None, description="the eval plugin's metrics at each "
                                                 "checkpoint and at the end (spec.evaluation); None without one")
    tokens_per_second: float = Field(ge=0)
    mfu: float | None = None
    wall_seconds: float = Field(ge=0)
    world_size: int = Field(ge=1)
    device: str
    seed: int
    versions: dict[str, str]


def parse_result(data: Any, source: str) -> ResultRecord:
    """Validate a record read back from a store, naming the file in the error."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StoreError(f"{source}: written by a newer flops-fit (result schema {version}; this ffctl reads "
                         f"{SCHEMA_VERSION}); upgrade ffctl")
    try:
        return ResultRecord.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise StoreError(f"{source}: not a valid result record ({where}: {first['msg']})") from None
