"""Bad input at scale: thousands of generated malformed inputs through the readers users feed.

    python benchmarks/fuzz_inputs.py [--n 5000] [--seed 0] [--timeout 15] [--families ...]

The strategies of ``tests/helpers/fuzz_inputs.py`` (those ``tests/test_fuzz_inputs.py``
runs with a small N) build ``--n`` inputs, split evenly over the families:

* ``data.yaml``: ``apply_data_yaml`` on a generated data.yaml (missing keys, wrong types,
  bad paths, nc vs names, YAML errors, alias bombs, non-UTF-8 bytes) and image lists;
* ``labels``: the same reader on generated label files and images (field counts,
  NaN/inf, out-of-range and non-numeric tokens, odd whitespace and file names,
  undecodable and decompression-bomb images, non-UTF-8 files);
* ``checkpoint``: ``read_detector_weights`` on checkpoints cut, garbled, of other zip
  layouts, naming ``os.system``, declaring huge sizes, of non-dict or tensor-less
  content, Ultralytics-like pickles with broken model trees;
* ``onnx``: ``onnx_test_cfg`` and ``load_onnx_detector`` on a tiny graph with generated
  metadata, or its bytes cut and garbled;
* ``protocol``: ``onnx_test_cfg`` and the test's evaluator on the tiny graph whose stored
  test protocol asks for output files (``format_only``, ``outfile_prefix``), storage
  backends, imports, or numbers out of range (a file the protocol wrote is a crash).

Each input is read in this process under a time limit (``--timeout``) and counted as
accepted, refused (one of the package's named errors), a crash (any other exception, code
run from the file, or the process's peak memory grown by over 1 GiB) or a hang. The table
is Markdown; the first crashes are listed with their inputs. Exit status 1 if any input
crashed or hung.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import io
import re
import os.path as osp
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.helpers.fuzz_inputs import (FAMILIES, STRATEGIES, TIMEOUT, quiet,  # noqa: E402
                                       run_case, warm_up)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=5000, help='inputs in all (split evenly)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--timeout', type=float, default=TIMEOUT,
                        help='seconds one input may take before it counts as a hang')
    parser.add_argument('--families', nargs='+', default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument('--show', type=int, default=5, help='crashes listed per family')
    return parser.parse_args()


def fuzz(family: str, n: int, rng_seed: int, base: str, timeout: float) -> dict:
    """Read ``n`` generated inputs of ``family``; counts, slowest input, first failures."""
    counts = collections.Counter()
    failures = []
    slowest = 0.0

    @seed(rng_seed)
    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(STRATEGIES[family])
    def read(case):
        nonlocal slowest
        # onnxruntime prints its session errors ("EP Error") to stdout: keep the table clean
        with contextlib.redirect_stdout(io.StringIO()):
            outcome = run_case(case, base, timeout)
        counts[outcome.kind] += 1
        slowest = max(slowest, outcome.seconds)
        if not outcome.ok:
            failures.append((case, outcome))

    start = time.perf_counter()
    read()
    return dict(counts=counts, failures=failures, slowest=slowest,
                seconds=time.perf_counter() - start)


def site(detail: str) -> str:
    """'KeyError at yolo_data.py:87 load_data_yaml' (and the package's frame nearest the
    error, where that is not it) from an outcome's detail."""
    kind = detail.split(':', 1)[0]
    frame = re.search(r'\[at ([^<\](]+)', detail)
    ours = re.search(r'\(package: ([^)]+)\)\]', detail)
    where = f'{kind} at {frame.group(1).strip()}' if frame else detail[:100]
    return where + (f', in {ours.group(1)}' if ours else '')


def main():
    args = parse_args()
    quiet()
    per_family = max(1, args.n // len(args.families))
    results = {}
    with tempfile.TemporaryDirectory(prefix='mmkd-fuzz-') as base:
        for name, outcome in warm_up(base).items():
            if outcome.kind != 'accepted':  # the generators' valid base must be read
                sys.exit(f'the valid {name} input is not accepted: {outcome.detail}')
        for i, family in enumerate(args.families):
            results[family] = fuzz(family, per_family, args.seed + i, base, args.timeout)
            c = results[family]['counts']
            print(f'{family}: {sum(c.values())} inputs in '
                  f'{results[family]["seconds"]:.0f} s', file=sys.stderr, flush=True)

    header = ('family', 'inputs', 'accepted', 'refused (named error)', 'crashes', 'hangs',
              'slowest input', 'inputs/s')
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '|'.join(['---'] + ['---:'] * (len(header) - 1)) + '|')
    total = collections.Counter()
    seconds = 0.0
    for family, r in results.items():
        c = r['counts']
        n = sum(c.values())
        total.update(c)
        seconds += r['seconds']
        print(f'| {family} | {n} | {c["accepted"]} | {c["refused"]} | {c["crash"]} | '
              f'{c["hang"]} | {r["slowest"]:.2f} s | {n / r["seconds"]:.0f} |')
    n = sum(total.values())
    print(f'| **all** | {n} | {total["accepted"]} | {total["refused"]} | {total["crash"]} | '
          f'{total["hang"]} | {max(r["slowest"] for r in results.values()):.2f} s | '
          f'{n / seconds:.0f} |')
    print(f'\n{n} inputs in {seconds:.0f} s (seed {args.seed}, time limit {args.timeout:.0f} s '
          'per input)')
    sites = collections.Counter()
    for family, r in results.items():
        for _, outcome in r['failures']:
            sites[(family, site(outcome.detail))] += 1
    if sites:
        print('\nfailures by place (family, error, innermost frame):')
        for (family, where), count in sites.most_common():
            print(f'  {count:5d}  {family}: {where}')
    for family, r in results.items():
        for case, outcome in r['failures'][:args.show]:
            print(f'\n--- {family}: {outcome.kind}: {outcome.detail}\n{case!r}'[:3000])
    sys.exit(1 if total['crash'] or total['hang'] else 0)


if __name__ == '__main__':
    main()
