"""Bad input at scale: generated malformed inputs for every reader users feed.

Each input (a data.yaml, label files and images, a checkpoint, an ONNX file or its stored
test protocol; built by the strategies of :mod:`tests.helpers.fuzz_inputs`) is read in
this process with a time limit, and must be either accepted or refused with one of the
package's named errors (``CheckpointError``, ``UnsafeCheckpointError``, ``ConfigError``,
``DataError``): no raw traceback, no hang, no gigabytes allocated for what a file merely
declares, no code run, no file written where a test protocol says.

A small N here (fixed examples: ``derandomize``); ``benchmarks/fuzz_inputs.py`` runs the
same strategies with thousands of inputs and a seed.
"""
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from .helpers.fuzz_inputs import STRATEGIES, run_case, warm_up

#: Inputs per family: the whole file takes well under a minute on 2 cores.
EXAMPLES = {'data.yaml': 100, 'labels': 100, 'checkpoint': 150, 'onnx': 100, 'protocol': 60}


@pytest.fixture(scope='module')
def fuzz_dir(tmp_path_factory):
    """Where the cases are written; the valid input of each family is read first (imports,
    registries, configs: the first read is not timed against the limit)."""
    base = str(tmp_path_factory.mktemp('fuzz'))
    outcomes = warm_up(base)
    assert all(o.kind == 'accepted' for o in outcomes.values()), outcomes
    return base


def check_family(family: str, base: str) -> None:
    @settings(max_examples=EXAMPLES[family], deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck),
              phases=(Phase.explicit, Phase.generate, Phase.shrink))
    @given(case=STRATEGIES[family])
    def reader_answers_by_name(case):
        outcome = run_case(case, base)
        assert outcome.ok, (f'{family} reader: {outcome.kind} after {outcome.seconds:.1f} s: '
                            f'{outcome.detail}\ninput: {case!r}')

    reader_answers_by_name()


@pytest.mark.parametrize('family', ['data.yaml', 'labels', 'checkpoint', 'onnx', 'protocol'])
def test_bad_input_is_refused_by_name_or_accepted(family, fuzz_dir):
    check_family(family, fuzz_dir)
