"""The pydantic base of every document model (scenario sections, dirt.yaml, driver
parameters): unknown keys are errors, values are frozen, aliases and names both work."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
