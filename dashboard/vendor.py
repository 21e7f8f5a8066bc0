"""`python -m dashboard.vendor`: refresh the vendored chart library from the npm registry.

The page draws its charts with uPlot (MIT licence, ~50 kB minified, no dependencies), pinned in
dashboard/package.json. This fetches that exact version with `npm pack`, checks the tarball against the
registry's integrity hash, copies the built files the page loads (and the licence) into
static/vendor/uplot/, and records version, integrity and per-file SHA-256 in static/vendor/uplot/VENDOR.json.
The copies are committed, so installing and running the dashboard needs neither npm nor the network, and
a non-editable install carries them as package data; tests/unit/test_dashboard_static.py checks the
files against VENDOR.json and the pin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
PACKAGE_JSON = HERE / "package.json"
TARGET = HERE / "static" / "vendor" / "uplot"
MANIFEST = TARGET / "VENDOR.json"
PACKAGE = "uplot"
FILES = {"dist/uPlot.iife.min.js": "uPlot.iife.min.js", "dist/uPlot.min.css": "uPlot.min.css", "LICENSE": "LICENSE"}


def pinned_version() -> str:
    return json.loads(PACKAGE_JSON.read_text())["dependencies"][PACKAGE]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    version = pinned_version()
    npm = shutil.which("npm")
    if npm is None:
        print("npm is not installed (apt-get install npm)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run([npm, "pack", f"{PACKAGE}@{version}", "--json", "--pack-destination", tmp],
                                capture_output=True, text=True, cwd=tmp)
        if packed.returncode != 0:
            print(f"npm pack {PACKAGE}@{version} failed:\n{packed.stderr}", file=sys.stderr)
            return 1
        info = json.loads(packed.stdout)[0]
        tarball = Path(tmp) / info["filename"]
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if digest != info["integrity"]:
            print(f"integrity mismatch: {digest} != {info['integrity']}", file=sys.stderr)
            return 1
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        TARGET.mkdir(parents=True, exist_ok=True)
        for source, name in FILES.items():
            shutil.copyfile(Path(tmp) / "package" / source, TARGET / name)
    MANIFEST.write_text(json.dumps({
        "package": PACKAGE, "version": version, "integrity": info["integrity"], "licence": "MIT",
        "files": {name: sha256(TARGET / name) for name in FILES.values()},
    }, indent=2) + "\n")
    print(f"vendored {PACKAGE}@{version} into {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
