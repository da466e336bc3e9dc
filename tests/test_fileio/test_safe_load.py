"""The one restricted loader: mmengine checkpoints under weights_only with an allow-list."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmkd_yolo.errors import CheckpointError, UnsafeCheckpointError
from mmkd_yolo.fileio import load_checkpoint_file
from mmkd_yolo.fileio.safe_load import RestrictedUnpickler, data_globals


def test_missing_and_garbage_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'this is not a checkpoint at all')
    with pytest.raises(CheckpointError, match='not a checkpoint torch can read'):
        load_checkpoint_file(str(junk))


def test_numpy_scalars_admitted(tmp_path):
    path = tmp_path / 'np.pth'
    torch.save({'meta': {'x': np.float64(1.5), 'a': np.arange(3), 'i': np.int64(2)}}, path)
    loaded = load_checkpoint_file(str(path))
    assert loaded['meta']['x'] == 1.5 and loaded['meta']['a'].tolist() == [0, 1, 2]


@pytest.mark.slow
def test_history_buffer_checkpoint_loads_in_fresh_process(tmp_path):
    """Before any HistoryBuffer exists in the process (as in tools/test.py)."""
    from mmengine.logging import HistoryBuffer
    path = tmp_path / 'hb.pth'
    torch.save({'message_hub': {'loss': HistoryBuffer([1.0, 2.0], [1, 1])}}, path)
    code = ('import sys, mmkd_yolo; from mmkd_yolo.fileio import load_checkpoint_file; '
            f'c = load_checkpoint_file({str(path)!r}); print(c["message_hub"]["loss"].mean())')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('1.5')


def test_getattr_limited_to_history_buffer_methods(tmp_path):
    import builtins

    from mmengine.logging import HistoryBuffer

    class _GetAttr:  # any attribute but the statistics methods is refused
        def __reduce__(self):
            return (builtins.getattr, (HistoryBuffer, 'update'))

    path = tmp_path / 'getattr.pth'
    torch.save({'meta': _GetAttr()}, path)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(str(path))


def test_empty_history_buffer_checkpoint_loads(tmp_path):
    """An empty HistoryBuffer pickles ``builtins.bytes`` (protocol 2 writes ``b''`` as a call
    of it): inert, so admitted, not refused as unsafe."""
    from mmengine.logging import HistoryBuffer
    path = tmp_path / 'empty_hb.pth'
    torch.save({'message_hub': {'log_scalars': {'train/lr': HistoryBuffer()}}}, path)
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    assert any(n.endswith('bytes') for n in names), names
    loaded = load_checkpoint_file(str(path))
    assert len(loaded['message_hub']['log_scalars']['train/lr'].data[0]) == 0


def test_one_allow_list_for_both_loaders():
    """The Ultralytics unpickler admits exactly the data globals, plus module stand-ins."""
    unpickler = RestrictedUnpickler.__new__(RestrictedUnpickler)
    for (module, name), obj in data_globals().items():
        assert unpickler.find_class(module, name) is obj
    stub = unpickler.find_class('models.common', 'Conv')
    assert stub.pickled_class == 'models.common.Conv'
    for module, name in (('os', 'system'), ('builtins', 'eval'), ('builtins', 'getattr'),
                         ('subprocess', 'Popen'), ('models.common', 'os')):
        with pytest.raises(UnsafeCheckpointError):
            unpickler.find_class(module, name)



# --- malformed input found by tests/test_fuzz_inputs.py -------------------------------------
@pytest.mark.parametrize('member', ['byteorder', 'data.pkl', 'data/0'])
def test_zip_declaring_a_huge_record_is_refused_unread(tmp_path, monkeypatch, member):
    # A 1.5 kB checkpoint whose zip directory claims a 4 GiB record: torch's reader
    # allocated and copied what was declared (peak memory +8 GiB, over 15 s) before failing.
    from ..helpers.fuzz_inputs import declare_sizes, torch_bytes
    path = tmp_path / 'huge.pth'
    path.write_bytes(declare_sizes(torch_bytes({'w': torch.zeros(2, 3)}), member, 0,
                                   0xFFFFFFFF))

    def no_load(*args, **kwargs):  # were the check gone, torch must not get the file
        raise AssertionError('torch.load was called on a file declaring 4 GiB')
    monkeypatch.setattr(torch, 'load', no_load)
    with pytest.raises(CheckpointError, match='declares 4294967295 bytes') as err:
        load_checkpoint_file(str(path))
    assert not isinstance(err.value, UnsafeCheckpointError)


def test_intact_zip_checkpoint_passes_the_archive_check(tmp_path):
    from mmkd_yolo.fileio.safe_load import check_archive
    path = tmp_path / 'ok.pth'
    torch.save({'w': torch.zeros(2, 3)}, path)
    check_archive(str(path))  # no error
    torch.save({'w': torch.zeros(2, 3)}, path, _use_new_zipfile_serialization=False)
    check_archive(str(path))  # legacy format: not a zip, left to torch.load


def test_damaged_pickle_is_not_called_unsafe(tmp_path):
    # An empty zip (or a pickle cut short) made torch say "Weights only load failed ...
    # Unsupported operand": it was refused as an UnsafeCheckpointError naming 'an unknown
    # callable', whose message says loading would run code. Nothing unsafe is in it.
    import io
    import zipfile
    buf = io.BytesIO()
    zipfile.ZipFile(buf, 'w').close()
    path = tmp_path / 'empty.pth'
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match='pickle is damaged') as err:
        load_checkpoint_file(str(path))
    assert not isinstance(err.value, UnsafeCheckpointError)


def test_zip_of_unknown_version_is_a_checkpoint_error(tmp_path):
    # zipfile's NotImplementedError (an unknown "version needed") is a damaged file too
    path = tmp_path / 'v.pth'
    torch.save({'w': torch.zeros(2)}, path)
    data = bytearray(path.read_bytes())
    at = data.find(b'PK\x01\x02')
    data[at + 6] = 0xFF  # version needed to extract, in the central directory
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint_file(str(path))
