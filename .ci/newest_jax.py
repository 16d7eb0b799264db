"""Fail when the installed jax is older than the newest release the package index offers.

pyproject.toml caps a dependency of jax's, ml_dtypes, below 0.7 (docs/speed.md says why). The
day a jax release needs ml_dtypes 0.7, pip will quietly install an older jax instead; this
check, run by `.ci/run` after the install, turns that day into a failed CI run that names the
cap. Without access to the index it says so and passes.
"""

import json
import subprocess
import sys
from importlib.metadata import version

installed = version("jax")
resolved = subprocess.run(
    [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
     "--report", "-", "jax"],
    capture_output=True, text=True,
)
try:
    newest = json.loads(resolved.stdout)["install"][0]["metadata"]["version"]
except (ValueError, KeyError, IndexError):
    print(".ci/newest_jax.py: could not ask the package index for the newest jax; not checked", file=sys.stderr)
    sys.exit(0)
if newest != installed:
    print(f".ci/newest_jax.py: jax {newest} is out, but the install chose jax {installed}: the cap "
          "ml_dtypes<0.7 in pyproject.toml holds jax back (or another pin does); drop the cap", file=sys.stderr)
    sys.exit(1)
print(f".ci/newest_jax.py: jax {installed} is the newest release; the ml_dtypes cap holds nothing back")
