"""Error codes of the contract and the one exception type that carries them."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHORIZED = "unauthorized"
    POLICY_DENIED = "policy_denied"
    APPROVAL_REQUIRED = "approval_required"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    EXECUTION_FAILED = "execution_failed"
    TIMEOUT = "timeout"
    GIT_REPO_ERROR = "git_repo_error"
    GIT_USAGE_ERROR = "git_usage_error"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


RETRYABLE_BY_DEFAULT = frozenset({ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE})


class ServiceError(Exception):
    """A failure with a contract error code; crosses process boundaries intact (picklable)."""

    def __init__(self, code: ErrorCode | str, message: str, retryable: bool | None = None) -> None:
        super().__init__(code, message, retryable)
        self.code = ErrorCode(code)
        self.message = message
        self.retryable = self.code in RETRYABLE_BY_DEFAULT if retryable is None else retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self) -> tuple[type[ServiceError], tuple[str, str, bool]]:
        return (type(self), (self.code.value, self.message, self.retryable))


def not_found(message: str) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, message)


def invalid_argument(message: str) -> ServiceError:
    return ServiceError(ErrorCode.INVALID_ARGUMENT, message)


def policy_denied(message: str, retryable: bool = False) -> ServiceError:
    return ServiceError(ErrorCode.POLICY_DENIED, message, retryable)
