"""Retained checkpoints on the local file system: find the newest complete one, prune the rest.

Layout: <FLINK_CHECKPOINT_DIR>/<job version>/<job id>/chk-<n>/_metadata. A checkpoint is complete once
its `_metadata` exists (Flink writes it last). Standard library only (used by both virtualenvs).
"""

from __future__ import annotations

import shutil
from pathlib import Path


def completed_checkpoints(version_dir: Path) -> list[Path]:
    """Complete checkpoints under one job version, oldest first."""
    found = [m.parent for m in version_dir.glob("*/chk-*/_metadata") if m.is_file()]
    return sorted(found, key=lambda chk: ((chk / "_metadata").stat().st_mtime, int(chk.name.split("-")[1])))


def latest_checkpoint(version_dir: Path) -> Path | None:
    found = completed_checkpoints(version_dir)
    return found[-1] if found else None


def prune_job_dirs(version_dir: Path, keep: Path | None) -> list[Path]:
    """Delete the folders of earlier runs of this job version, except the one holding `keep`.

    Each start of the job is a new Flink job id with its own folder; only the checkpoint restored
    from is still needed once the new run has started."""
    removed = []
    if not version_dir.is_dir():
        return removed
    for job_dir in version_dir.iterdir():
        if job_dir.is_dir() and (keep is None or job_dir != keep.parent):
            shutil.rmtree(job_dir, ignore_errors=True)
            removed.append(job_dir)
    return removed
