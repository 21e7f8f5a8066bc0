"""Readers of the systems the dashboard shows, one module each. Every reader raises `Unavailable` with a
short reason when its system does not answer; callers turn that into the "unavailable" state of their
part of the page instead of failing the whole response."""

from __future__ import annotations


class Unavailable(RuntimeError):
    """A system the dashboard reads does not answer. The message says which and why (no secrets)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text: enough to say why, never a stack or a connection string.
    A Kafka client error gives its own words ("Failed to get metadata: Local: Broker transport failure")."""
    reason = getattr(exc.args[0], "str", None) if exc.args else None
    text = (reason() if callable(reason) else str(exc)).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
