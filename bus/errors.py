"""The error vocabulary shared by every service.

    CsError
    ├── DecodeError            a message could not be decoded or validated (dead-lettered)
    ├── ConfigError            a configuration file or value is wrong (names file and key)
    ├── BusUnavailable         the NATS server cannot be reached
    ├── AdminError             an admin request was refused; carries a service error code
    └── ProviderError          a cloud call failed, translated at the driver's choke point
        ├── TemporaryError     retry later (connection lost, 5xx, timeout)
        ├── OutOfResources     the cloud has no room (quota, capacity); back off
        └── PermanentError     retrying cannot help (bad image, bad flavor); give up, record why
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """What an endpoint's answer means: the service error code of the NATS services API
    (HTTP-like numbers where one fits), and the client's own for no answer."""

    OK = "200"
    """Answered (only counted in metrics: a success carries no code)."""
    BAD_REQUEST = "400"
    """The request was malformed or asked for something impossible."""
    NOT_FOUND = "404"
    """The cloud or VM named does not exist."""
    CONFLICT = "409"
    """The request conflicts with the state (e.g. a record changed meanwhile)."""
    INTERNAL = "500"
    """The handler failed; the service's log says why."""
    NO_RESPONDERS = "no_responders"
    """No service instance answers on the subject."""
    TIMEOUT = "timeout"
    """No answer in time."""
    PERMISSION = "permission"
    """The NATS server refused this user the subject."""

    @classmethod
    def of(cls, raw: str) -> ErrorCode:
        """The code `raw` names; one this version does not know is INTERNAL."""
        try:
            return cls(raw)
        except ValueError:
            return cls.INTERNAL


class CsError(Exception):
    """Base of every error raised on purpose by cloudscheduler."""


class DecodeError(CsError):
    """A message failed to decode or validate; `subject` says where it came from."""

    def __init__(self, message: str, subject: str = "") -> None:
        super().__init__(f"{subject}: {message}" if subject else message)
        self.subject = subject
        self.detail = message


class ConfigError(CsError):
    """A configuration file or value is invalid; the message names the file and key."""


class BusUnavailable(CsError):
    """The NATS server could not be reached within the allotted time."""


class AdminError(CsError):
    """An admin endpoint answered with an error; `code` is the service error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ProviderError(CsError):
    """A cloud operation failed; subclasses say what the caller should do about it."""

    kind = "provider"


class TemporaryError(ProviderError):
    """Retry after `delay` seconds: the failure is expected to pass."""

    kind = "temporary"

    def __init__(self, message: str, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class OutOfResources(ProviderError):
    """The cloud has no room for the request (quota or capacity); back the cloud off."""

    kind = "out_of_resources"


class PermanentError(ProviderError):
    """Retrying will not help; record the reason and give up on this request."""

    kind = "permanent"
