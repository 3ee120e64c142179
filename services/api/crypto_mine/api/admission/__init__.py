"""Admission of clicks and attempts: limits, idempotency, coalescing, shards, MongoDB checks."""
