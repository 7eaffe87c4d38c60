"""What the storage refuses, in words that name the field or the reason (the API turns each into
a status code: `NotFound` 404, `Conflict` 409, `Invalid` 422)."""

from __future__ import annotations


class StoreError(Exception):
    status = 400

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    status = 409


class Invalid(StoreError):
    status = 422
