"""What every service of the stack is: a process to run, plus the one-time steps around it.

Each `Service` turns the `Settings` into a `ProcessSpec` (what to run) plus `install` (binaries),
`prepare` (state that must exist before the first start: Kafka storage, a PostgreSQL cluster, config
files) and `bootstrap` (what must exist once it runs: topics, databases, migrations). A service pointed
elsewhere by the environment is not started, only checked and bootstrapped (`managed` is False).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from settings import Settings
from stack.procs import ProcessSpec


class Service(ABC):
    name: str = ""

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def managed(self) -> bool:
        return True

    def install(self) -> None:
        """Install what the service needs to run (idempotent)."""

    def prepare(self) -> None:
        """Create state that must exist before the first start (idempotent)."""

    @abstractmethod
    def spec(self) -> ProcessSpec:
        """The process to run."""

    def healthy(self) -> bool:
        return True

    def bootstrap(self) -> None:
        """Create what must exist once the service runs (idempotent)."""

    def check_external(self) -> None:
        """Fail fast when an external (unmanaged) endpoint is unreachable."""

    def endpoint(self) -> str:
        return ""
