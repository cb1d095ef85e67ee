"""The base of every schema, and the value types schemas share."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Provider = str
"""Which provider serves a cloud: a name in the table of providers (`providers.table`)."""

OptionValue = str | int | float | bool | tuple[str, ...]
"""A value of a provider's own setting (what a TOML key of a `[[cloud]]` table can hold)."""

VmState = Literal["requested", "booting", "running", "retiring", "deleting", "error", "gone"]
"""A VM's state in the registry; what each means and the moves between them: `bus.vmstates`."""

InstanceState = Literal["creating", "running", "stopped", "deleting", "error", "unknown"]
"""A provider's view of one instance, in provider-neutral terms."""


class Message(BaseModel):
    """Base of every schema: frozen, strict, forward compatible."""

    # bytes (dead letters carry raw bodies) render as base64 in JSON, never as broken UTF-8.
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore",
                              ser_json_bytes="base64", val_json_bytes="base64")
    SCHEMA: ClassVar[int] = 1

    def summary(self) -> str:
        """A few words a person reads in the Cs-Summary header (`nats sub`, `cs trace`)."""
        return type(self).__name__
