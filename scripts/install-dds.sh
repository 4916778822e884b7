#!/usr/bin/env bash
# Install the CycloneDDS Python binding of the 0.10.x line into a virtual environment.
#
# Why this script: Unitree Go2/G1 and ROS 2 Humble/Jazzy speak CycloneDDS 0.10.x, and the newest
# binding on PyPI (11.x) does not interoperate with 0.10 peers. 0.10.x has no wheel for Python 3.11,
# so the binding is built from source against Debian's cyclonedds-dev (bookworm: 0.10.2), with
# CYCLONEDDS_HOME pointing at a folder that links include/, lib/ and bin/ to the system's. The folder
# lives inside the venv because the binding remembers its library path.
#
# README, .ci/run and docker/Dockerfile.deploy call this same script.
#   usage: scripts/install-dds.sh VENV
set -euo pipefail
venv=${1:?usage: scripts/install-dds.sh VENV}
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$venv/bin/pip" ] || { echo "install-dds: no pip in $venv (create it with python3 -m venv $venv)" >&2; exit 1; }

if ! dpkg -s cyclonedds-dev >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "install-dds: installing Debian's cyclonedds-dev (needs root)" >&2
  $sudo apt-get install -y -q --no-install-recommends cyclonedds-dev >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends cyclonedds-dev >/dev/null; }
fi

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")
home="$venv/cyclonedds-home"
mkdir -p "$home"
ln -sfn /usr/include "$home/include"
ln -sfn "/usr/lib/$multiarch" "$home/lib"
ln -sfn /usr/bin "$home/bin"
home=$(cd "$home" && pwd)
# A binding built against another CYCLONEDDS_HOME (or another version) is rebuilt.
built=$("$venv/bin/python" -c "from cyclonedds.__library__ import library_path; print(library_path)" 2>/dev/null || true)
if [ "$built" != "$home/lib/libddsc.so" ]; then
  CYCLONEDDS_HOME="$home" "$venv/bin/pip" install -q --no-cache-dir --force-reinstall --no-deps \
    -c "$root/constraints.txt" "cyclonedds==0.10.2"
  "$venv/bin/pip" install -q -c "$root/constraints.txt" "cyclonedds==0.10.2"  # its own dependencies
fi
"$venv/bin/python" -c "import cyclonedds.domain, importlib.metadata as m; print('install-dds: cyclonedds', m.version('cyclonedds'))"
