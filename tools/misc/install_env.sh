#!/usr/bin/env bash
# Set up a project-local virtual environment with the OpenMMLab 2.x stack on modern torch.
#
#   bash tools/misc/install_env.sh          # what `make test` and `make demo` run first
#
# Variables:
#   VENV           where the environment goes (default: .venv)
#   PYTHON         interpreter that creates it (default: python3, must be >= 3.10)
#   TORCH_VERSION  torch to install when none is importable by PYTHON (default: 2.13.0)
#   MMKD_CACHE     where the built mmcv wheel is kept (default: ~/.cache/mmkd_yolo)
#
# A torch that PYTHON can already import (e.g. a CUDA build) is reused: the environment
# then sees the interpreter's site-packages. mmcv 2.0.1 has no wheels for modern torch and
# its setup.py asks for C++14 while torch >= 2.1 needs C++17: it is built here from PyPI's
# source archive with that flag changed, once per (mmcv, torch, Python, CPU/CUDA), and the
# wheel is cached outside the repository.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
MMCV_VERSION="2.0.1"
CACHE="${MMKD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmkd_yolo}"

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[install] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Everything that decides what gets installed; the environment is redone when it changes.
STAMP_SRC="$(cat requirements/*.txt setup.py tools/misc/install_env.sh | sha1sum | cut -d' ' -f1)"
STAMP="$VENV/.mmkd_yolo-installed"
# What is installed, read from the packages' metadata (a tenth of a second, where importing
# the stack takes seconds on every `make test-fast`): the versions, and mmcv's compiled ops.
# A package removed or upgraded under the environment (e.g. a torch it reuses) changes it.
installed() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md
names = ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmyolo', 'mmrazor', 'mmkd_yolo')
ext = any(str(f).startswith('mmcv/_ext') for f in md.distribution('mmcv').files or [])
print(' '.join(f'{n}=={md.version(n)}' for n in names), 'mmcv-ops' if ext else 'no-mmcv-ops')
PY
}
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_SRC $(installed)" ]]; then
  say "environment $VENV is up to date"
  exit 0
fi

# --- interpreter -------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "no '$PYTHON' found; install Python >= 3.10 or set PYTHON=/path/to/python3"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$("$PYTHON" --version 2>&1) is too old: Python >= 3.10 is needed (set PYTHON=...)"

if [[ ! -x "$VENV/bin/python" ]]; then
  if "$PYTHON" -c 'import torch' 2>/dev/null; then
    say "reusing torch $("$PYTHON" -c 'import torch; print(torch.__version__)') from $PYTHON (venv sees its site-packages)"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV" || die "could not create $VENV; on Debian/Ubuntu: apt-get install python3-venv"
  fi
fi
PY="$ROOT/$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip

# --- torch -------------------------------------------------------------------------------
if ! "$PY" -c 'import torch' 2>/dev/null; then
  say "installing torch==$TORCH_VERSION (set TORCH_VERSION to change it)"
  "${PIP[@]}" install -q "torch==$TORCH_VERSION"
fi
"$PY" -c 'import sys, torch
v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
sys.exit(v < (2, 6))' || die "torch $("$PY" -c 'import torch; print(torch.__version__)') is too old: >= 2.6 is needed (safe checkpoint loading with an allow-list)"
"${PIP[@]}" install -q -r requirements/build.txt -r requirements/runtime.txt -r requirements/tests.txt

# --- the OpenMMLab packages (pure Python; mmcv imports mmengine) ---------------------------
say "installing mmengine, mmdet, mmyolo, mmrazor"
mapfile -t MM_PKGS < <(grep -E '^mm' requirements/mminstall.txt | grep -v '^mmcv')
"${PIP[@]}" install -q --no-deps "${MM_PKGS[@]}"

# --- mmcv with compiled ops --------------------------------------------------------------
mmcv_ok() { "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; }
if ! mmcv_ok; then
  KEY="$("$PY" -c "import sys, torch
dev = 'cu' + torch.version.cuda.replace('.', '') if torch.version.cuda else 'cpu'
print(f'mmcv-${MMCV_VERSION}_torch-{torch.__version__.split(\"+\")[0]}-{dev}_py{sys.version_info[0]}{sys.version_info[1]}')")"
  WHEEL_DIR="$CACHE/wheels/$KEY"
  WHEEL="$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -n "$WHEEL" ]]; then
    say "using cached mmcv wheel $WHEEL"
  else
    # Check what the build needs before spending ten minutes on it.
    CXX_BIN="${CXX:-c++}"
    command -v "$CXX_BIN" >/dev/null \
      || die "no C++ compiler ('$CXX_BIN'): mmcv's ops are C++. On Debian/Ubuntu: apt-get install g++"
    PY_INC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    [[ -f "$PY_INC/Python.h" ]] \
      || die "no Python headers ($PY_INC/Python.h): on Debian/Ubuntu: apt-get install python3-dev"
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    mkdir -p "$CACHE/logs"
    LOG="$CACHE/logs/$KEY.log"
    say "building mmcv $MMCV_VERSION ops from source for $KEY"
    say "  (no wheels exist for this torch; about 11 minutes on 2 cores, once: the wheel is cached in $WHEEL_DIR)"
    say "  full log: $LOG"
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
      "mmcv==$MMCV_VERSION" -d "$BUILD" >"$LOG" 2>&1 \
      || { tail -n 20 "$LOG" >&2; die "could not download mmcv $MMCV_VERSION source from PyPI (see $LOG)"; }
    tar -xzf "$BUILD/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD"
    # torch >= 2.1 headers need C++17 (mmcv fixed this only in 2.1+, PR #2865).
    sed -i 's/c++14/c++17/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    START=$SECONDS
    set +e
    (cd "$BUILD/mmcv-$MMCV_VERSION" && MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "${PIP[@]}" wheel -v --no-deps --no-build-isolation . -w "$BUILD/dist") 2>&1 \
      | tee -a "$LOG" \
      | while IFS= read -r line; do
          # ninja prints "[k/N] c++ ... -c .../foo.cpp -o ..." for each compiled file
          if [[ "$line" =~ \[([0-9]+)/([0-9]+)\].*/([A-Za-z0-9_]+\.(cpp|cu))[[:space:]] ]]; then
            printf '[install]   compiling mmcv ops %3s/%s  %-40s %4ds\n' \
              "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" $((SECONDS - START))
          fi
        done
    STATUS=${PIPESTATUS[0]}
    set -e
    WHEEL_BUILT="$(ls "$BUILD"/dist/mmcv-*.whl 2>/dev/null | head -n1 || true)"
    if [[ $STATUS -ne 0 || -z "$WHEEL_BUILT" ]]; then
      grep -E 'error|Error' "$LOG" | tail -n 15 >&2 || true
      die "mmcv build failed after $((SECONDS - START))s (full log: $LOG). Needs a C++17 compiler (g++ >= 7), Python headers and torch importable by $PY"
    fi
    mkdir -p "$WHEEL_DIR"
    cp "$WHEEL_BUILT" "$WHEEL_DIR/.tmp.whl" && mv "$WHEEL_DIR/.tmp.whl" "$WHEEL_DIR/$(basename "$WHEEL_BUILT")"
    WHEEL="$WHEEL_DIR/$(basename "$WHEEL_BUILT")"
    say "built mmcv in $((SECONDS - START))s, cached $WHEEL"
  fi
  "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL"
  if ! mmcv_ok; then
    "$PY" -c 'import mmcv.ops' 2>&1 | tail -n 5 >&2
    die "mmcv installed from $WHEEL but 'import mmcv.ops' fails (above); delete $WHEEL_DIR and rerun"
  fi
fi

# --- this package ------------------------------------------------------------------------
# Run from the checkout, as `setup.py develop` installed: the checkout on sys.path (a .pth)
# with its egg-info, and mmkd_yolo/.mim linked to configs/ and tools/. Edits show at once,
# and mim and mmengine's `mmkd_yolo::` scope find the package where they look for one (the
# folder of its metadata + its name), which a PEP 660 editable install (pip install -e)
# leaves empty. Nothing in the environment points into the checkout for pip to write through
# or delete: `pip install .` into it installs a separate copy, `pip uninstall` leaves the
# checkout alone.
say "installing mmkd_yolo (from the checkout)"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[[ -L "$SITE/mmkd_yolo" ]] && rm -f "$SITE/mmkd_yolo"  # an earlier version's link
if ls "$SITE"/mmkd_yolo-*.dist-info >/dev/null 2>&1; then  # an earlier pip install
  "${PIP[@]}" uninstall -q -y mmkd_yolo >"$VENV/.mmkd_yolo-pip.log" 2>&1 || true
fi
"$PY" setup.py -q egg_info >"$VENV/.mmkd_yolo-pip.log" 2>&1 \
  || { tail -n 30 "$VENV/.mmkd_yolo-pip.log" >&2; die "python setup.py egg_info failed"; }
echo "$ROOT" > "$SITE/mmkd_yolo.pth"
"$PY" -c 'import mmkd_yolo' || die "'import mmkd_yolo' failed in $VENV"
echo "$STAMP_SRC $(installed)" > "$STAMP"
say "ready: $VENV ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
