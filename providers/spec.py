"""What a provider is to the rest of the system: its name, its options model and where its
driver is. Plain data: this module, the table and every provider's `options.py` import no
SDK and nothing above the bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError


class ProviderOptions(BaseModel):
    """A provider's own settings of one cloud: each field is a key of a `[[cloud]]` table of
    that provider, with its default and its docstring (the one place both are written).
    Unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    IMAGE_KEY: ClassVar[str] = ""
    """The field naming the image of jobs that name none ("" = the provider has none)."""
    NEEDS_IMAGE: ClassVar[bool] = True
    """Whether a VM of this provider boots an image (a job or the cloud must name one); a
    batch drone has none."""
    TEMPLATE_VARIABLES: ClassVar[dict[str, str]] = {}
    """Placeholders of this provider's own that its clouds' templates may use, with what
    they become (besides those every template has)."""

    @classmethod
    def read(cls, data: dict[str, Any], context: ConfigContext | None = None) -> Self:
        """Validate `data` (a cloud's own keys) strictly ("3" is no number); ValueError says
        which key is wrong and why, one line per key."""
        plain = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls.model_validate(plain, strict=True, context=context)
        except ValidationError as exc:
            raise ValueError(describe(exc)) from None

    def address(self, cloud: str) -> str:
        """Where the cloud is, as an operator recognises it (a URI, a clouds.yaml entry)."""
        return cloud

    def default_image(self) -> str:
        """The image a VM gets when its job names none for this cloud; "" = none."""
        return str(getattr(self, self.IMAGE_KEY, "")) if self.IMAGE_KEY else ""

    def lifetime_s(self) -> float:
        """How long a VM may run before it is retired and replaced; 0 = no limit."""
        return 0.0

    def template_values(self) -> dict[str, str]:
        """The values of TEMPLATE_VARIABLES for this cloud."""
        return {}


@dataclass(frozen=True)
class ConfigContext:
    """What an options model may need to know while reading a config file."""

    config_dir: Path
    """The folder of the config file (relative paths in options are relative to it)."""
    cloud: str
    """The cloud's name (some defaults are derived from it)."""


@dataclass(frozen=True)
class Provider:
    """One kind of cloud: a line of the table of providers."""

    name: str
    """The `provider = "..."` of a `[[cloud]]` table; the provisioner program is
    `cs-provisioner-<name>`."""
    options: type[ProviderOptions]
    """The options model: the provider's `[[cloud]]` keys, defaults and checks."""
    driver: str
    """The module holding `make_driver(record, context)` (imported by the provisioner of
    this provider only: the SDK is loaded there and nowhere else)."""
    summary: str
    """One line saying what a cloud of this provider is (shown by `cs` and the docs)."""
    provisioner_keys: dict[str, str | int | float] = field(default_factory=dict)
    """Keys of the `[provisioner]` table only this provider's driver reads, with their
    defaults."""
    v1_type: str = ""
    """The cloud type v1's `cloud_status` shows for it ("" = the name)."""
    default_user_data: str = ""
    """The provider's built-in template, used when a cloud sets no `user_data`; "" = the
    built-in cloud-init worker (`provisioning.userdata.DEFAULT_USER_DATA`)."""

    @property
    def program(self) -> str:
        """The provisioner's program (service) name."""
        return f"cs-provisioner-{self.name}"


_EXPECTED = {"int_type": "an integer", "int_parsing": "an integer", "float_type": "a number",
             "string_type": "a string", "bool_type": "true or false",
             "tuple_type": "a list of strings"}
"""What a key of each type expects, said as the rest of the config file's errors say it."""


def describe(exc: ValidationError) -> str:
    """A pydantic error as `key: what was wrong, got value` lines (a check of the whole
    model names its keys itself)."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            message = "not a setting of this provider"
        elif kind == "literal_error":
            choices = str((err.get("ctx") or {}).get("expected", "")).replace("'", "")
            message = f"expected one of {choices.replace(' or ', ', ')}, got {err['input']!r}"
        elif kind in _EXPECTED:
            message = f"expected {_EXPECTED[kind]}, got {err['input']!r}"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{key}: {message}" if key else message)
    return "\n".join(lines)
