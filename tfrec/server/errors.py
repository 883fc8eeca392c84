"""Errors that become gRPC statuses: a request handler raises ServingError(code, message) and the service turns it
into that status, so no request ever crashes the server."""

from __future__ import annotations

import grpc
import tensorflow as tf

# TF's error codes are numerically the same as gRPC's (both follow google.rpc.Code).
_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failure with the gRPC status it should produce."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def not_found(message: str) -> ServingError:
    """Unknown model, version or version label."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def invalid(message: str) -> ServingError:
    """A request that does not fit the signature (names the offending input or field)."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def code_from_int(value: int) -> grpc.StatusCode:
    """The gRPC status code with numeric value `value` (UNKNOWN for values gRPC does not define)."""
    return _BY_VALUE.get(int(value), grpc.StatusCode.UNKNOWN)


def as_serving_error(exc: BaseException) -> ServingError:
    """Any exception as a ServingError: TF op errors keep their code (as TF Serving passes them on), anything else
    is INTERNAL with the exception's message."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        return ServingError(code_from_int(exc.error_code), exc.message)
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
