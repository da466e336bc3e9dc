#!/usr/bin/env bash
# The GPU check, ready to run on a machine with CUDA (and, as a CPU fallback, on one without):
#
#   bash benchmarks/gpu_check.sh [--coco128 DIR] [--yolov5n PATH] [--plan auto|cuda|cpu]
#       [--dry-run] [--skip-install] [--tests 'PYTEST ARGS'] [--epochs N] [--rounds N]
#       [--img-size N] [--batch N] [--skip-iters N] [--workers N] [--out DIR]
#
# 1. installs the environment (bash tools/misc/install_env.sh: reuses a torch that python3
#    can import, e.g. a CUDA build; a no-op when .venv is up to date);
# 2. runs the tests (tests/ has no CUDA-only tests: the fast suite, -m "not slow");
# 3. trains YOLOv5-n plain and distilled from a YOLOv5-s (--amp, --t-precision fp16) at
#    640 px, batch 16, on coco128, alternating, and evaluates the official YOLOv5n in fp32
#    and fp16 (benchmarks/gpu_check.py: the commands and what is measured);
# 4. checks the teacher's precision paths in three one-epoch runs distilled from the
#    official YOLOv5n: --t-precision auto (its choice and reason, as logged), bf16 under
#    --amp, and that run resumed with fp32 under --amp (outside the autocast; the
#    float32 teacher kept, not the checkpoint's bfloat16 one);
# 5. prints one markdown table (also written to work_dirs/gpu_check/<time>/report.md).
#
# Without CUDA it says so and runs the same steps on a tiny schedule (160 px, teacher in
# bf16, no --amp), the CUDA columns n/a. --plan cuda|cpu forces a plan (with --dry-run,
# the CUDA commands can be read on any machine). Exit status 1 if any step failed.
# Defaults: --coco128 ../shared/data/coco128, --yolov5n ../shared/weights/yolov5n.pt
# (relative to the repository), VENV=.venv (as install_env.sh).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
[[ "$VENV" = /* ]] && PY="$VENV/bin/python" || PY="$ROOT/$VENV/bin/python"
COCO128="$(dirname "$ROOT")/shared/data/coco128"
YOLOV5N="$(dirname "$ROOT")/shared/weights/yolov5n.pt"
DRY=0
SKIP_INSTALL=0
PASS=()

say() { printf '[gpu_check] %s\n' "$*"; }
fail() { printf '[gpu_check] FAILED: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --coco128) [[ $# -ge 2 ]] || fail "--coco128 needs a folder"; COCO128="$2"; shift 2 ;;
    --yolov5n) [[ $# -ge 2 ]] || fail "--yolov5n needs a path"; YOLOV5N="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --skip-install) SKIP_INSTALL=1; shift ;;
    -h|--help) sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
DATA="$COCO128"
[[ "$DATA" == *.yaml || "$DATA" == *.yml ]] || DATA="$COCO128/data.yaml"

# Inputs first: a missing file or a mistyped option should not cost an install (minutes
# on a fresh machine). Parsing the options needs no third-party package.
if [[ $DRY -eq 0 ]]; then
  CHECK_PY="$PY"
  [[ -x "$CHECK_PY" ]] || CHECK_PY="$(command -v python3 || true)"
  if [[ -n "$CHECK_PY" ]]; then
    "$CHECK_PY" benchmarks/gpu_check.py --dry-run --plan cpu --coco128 "$COCO128" \
      --yolov5n "$YOLOV5N" "${PASS[@]}" >/dev/null || fail "bad options (above)"
  fi
  [[ -f "$DATA" ]] || fail "no $DATA: give --coco128 DIR (the coco128 folder holding data.yaml)"
  [[ -f "$YOLOV5N" ]] || fail "no $YOLOV5N: give --yolov5n PATH (the official yolov5n.pt)"
fi

# --- 1. install --------------------------------------------------------------------------
if [[ $SKIP_INSTALL -eq 1 ]]; then
  INSTALL="skipped (--skip-install)"
  say "step 1, install: skipped (--skip-install), using $PY"
else
  say "step 1, install: VENV=$VENV bash tools/misc/install_env.sh"
  if [[ $DRY -eq 0 ]]; then
    START=$SECONDS
    VENV="$VENV" bash tools/misc/install_env.sh \
      || fail "step 1 (install: bash tools/misc/install_env.sh) failed; its messages are above"
    INSTALL="ok in $((SECONDS - START))s"
  fi
fi
[[ $DRY -eq 1 || -x "$PY" ]] || fail "no $PY: run without --skip-install, or set VENV"

# --- 2-5. tests, runs, table (benchmarks/gpu_check.py) ---------------------------------------
if [[ $DRY -eq 1 ]]; then
  # before an install there may be no environment yet: any python3 prints the plan
  [[ -x "$PY" ]] || PY="$(command -v python3)"
  exec "$PY" benchmarks/gpu_check.py --dry-run --coco128 "$COCO128" --yolov5n "$YOLOV5N" \
    "${PASS[@]}"
fi
"$PY" benchmarks/gpu_check.py --coco128 "$COCO128" --yolov5n "$YOLOV5N" \
  --install-status "$INSTALL" "${PASS[@]}"
STATUS=$?
[[ $STATUS -eq 0 ]] || fail "steps 2-5 (benchmarks/gpu_check.py) exited with status $STATUS; the failed steps are listed above"
