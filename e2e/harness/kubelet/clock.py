"""Timestamps in the two formats the API uses."""

from datetime import UTC, datetime


def now() -> str:
    """RFC 3339 with seconds (metav1.Time)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """RFC 3339 with microseconds (metav1.MicroTime, e.g. Lease.spec.renewTime)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
