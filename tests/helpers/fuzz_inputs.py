"""Malformed inputs for the readers users feed, and how a reader answered each one.

Shared by ``tests/test_fuzz_inputs.py`` (a small N in ``make test``) and
``benchmarks/fuzz_inputs.py`` (a large N): hypothesis strategies that build one input
(:class:`Case`: the files of a folder and the one to read) per family, and
:func:`run_case`, which writes it to a fresh folder, calls the family's public reader in
this process under a time limit and says what happened (:class:`Outcome`):

* ``accepted``: the reader returned;
* ``refused``: it raised one of the package's named errors (:data:`NAMED_ERRORS`);
* ``crash``: anything else (a raw ``KeyError``, ``UnicodeDecodeError``, torch's
  ``RuntimeError``...), or the input ran code (a canary file appeared), or the peak
  memory of the process rose by more than :data:`MEMORY_LIMIT` bytes;
* ``hang``: no answer within the time limit.

Families and their readers:

* ``data.yaml``: :func:`mmkd_yolo.apis.apply_data_yaml` on a valid YOLO tree with a
  generated ``data.yaml`` (missing keys, wrong types, bad paths, nc vs names, YAML syntax
  errors, alias bombs, non-UTF-8 bytes) and image lists;
* ``labels``: the same reader with a valid ``data.yaml`` and generated images and label
  files (field counts, NaN/inf, out-of-range, huge or non-numeric tokens, odd whitespace,
  odd file names, undecodable and decompression-bomb images, non-UTF-8 files);
* ``checkpoint``: :func:`mmkd_yolo.converters.read_detector_weights` on generated
  checkpoints (state dicts, mmengine and distillation layouts, Ultralytics-like pickles)
  cut, garbled, or replaced by zips of other layouts, pickles naming ``os.system``,
  huge declared sizes, non-dict pickles;
* ``onnx``: :func:`mmkd_yolo.apis.onnx_detector.onnx_test_cfg` and ``load_onnx_detector`` on a
  tiny valid ONNX graph with generated metadata, or its bytes cut and garbled;
* ``protocol``: ``onnx_test_cfg`` on the tiny graph whose stored test protocol was crafted
  (output paths and ``format_only`` for the COCO metric, storage backends, imports, other
  entries and numbers out of range anywhere in it), then the test's evaluator on one
  detection: an accepted protocol must not have written anything (a file in the case's
  :data:`OUTSIDE` folder is a crash).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import os.path as osp
import pickle
import resource
import shutil
import signal
import struct
import tempfile
import time
import traceback
import types
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import yaml
from hypothesis import strategies as st

from mmkd_yolo.errors import CheckpointError, ConfigError, DataError, UnsafeCheckpointError

from .ultralytics_pt import installed_modules

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KD_CONFIG = osp.join(REPO, 'configs', 'distill', 'yolov5',
                     'kd-out_yolov5_s-to-n-v61_fast_1xb16-40e_shapes-160.py')
STUDENT_CONFIG = osp.join(REPO, 'configs', 'yolov5', 'yolov5_n-v61_fast_1xb16-40e_shapes-160.py')

#: What a reader may raise: the package's named errors.
NAMED_ERRORS = (CheckpointError, UnsafeCheckpointError, ConfigError, DataError)
FAMILIES = ('data.yaml', 'labels', 'checkpoint', 'onnx', 'protocol')
#: Placeholder in generated file contents for the case's folder (absolute paths).
ROOT = '@ROOT@'
#: A file the malicious pickles try to create (relative: the reader runs in the case's
#: folder). Its existence after a read means code from the file ran.
CANARY = 'PWNED'
#: Seconds one input may take before it counts as a hang.
TIMEOUT = 15.0
#: The folder of a case that crafted test protocols point their outputs at: a file in it
#: after the read means the protocol wrote where it was told.
OUTSIDE = 'outside'
#: A rise of the process's peak memory (bytes) that counts as a failure: a reader must not
#: allocate what a file merely declares.
MEMORY_LIMIT = 1 << 30


# --- what a case is, and how it is judged ---------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One generated input: files written into a fresh folder, and the one to read.

    Attributes:
        family (str): One of :data:`FAMILIES`.
        note (str): What was generated, in words (shown on failure).
        files (tuple): ``(relative path, bytes)`` pairs; :data:`ROOT` in the bytes becomes
            the folder's absolute path.
        target (str): The relative path given to the reader.
        options (tuple): ``(name, value)`` pairs for the reader (e.g. ``use_ema``).
    """
    family: str
    note: str
    files: Tuple[Tuple[str, bytes], ...]
    target: str
    options: Tuple[Tuple[str, Any], ...] = ()

    def __repr__(self) -> str:
        parts = [f'Case({self.family}: {self.note}; read {self.target!r}']
        usual = dict(_valid_tree())
        same = [name for name, data in self.files if usual.get(name) == data]
        if same:
            parts.append(f'  the valid tree: {same}')
        for name, data in self.files:
            if name in same:
                continue
            known = [k for k, v in _images.items() if v == data]
            shown = (f'<valid {known[0]}>' if known else
                     repr(data[:300]) + ('...' if len(data) > 300 else ''))
            parts.append(f'  {name!r} ({len(data)} bytes): {shown}')
        if self.options:
            parts.append(f'  options {dict(self.options)}')
        return '\n'.join(parts) + ')'


@dataclass
class Outcome:
    """How a reader answered one input: ``kind`` is accepted, refused, crash or hang."""
    kind: str
    detail: str = ''
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind in ('accepted', 'refused')


class Hang(BaseException):
    """Raised by the alarm. A BaseException, so that a reader's ``except Exception`` (which
    turns anything into a named error) cannot hide a hang."""


def _on_alarm(signum, frame):
    raise Hang()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def classify(call: Callable[[], Any], timeout: float = TIMEOUT) -> Outcome:
    """Run ``call`` in this process (main thread) with a ``SIGALRM`` time limit."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    peak = _peak_rss()
    start = time.perf_counter()
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            call()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        outcome = Outcome('accepted')
    except Hang:
        outcome = Outcome('hang', f'no answer after {timeout:.0f} s')
    except NAMED_ERRORS as e:
        outcome = Outcome('refused', f'{type(e).__name__}: {str(e)[:400]}')
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001  (everything else is what is looked for)
        frames = traceback.extract_tb(e.__traceback__)
        where = ' <- '.join(f'{osp.basename(f.filename)}:{f.lineno} {f.name}'
                            for f in reversed(frames[-4:]))
        # the package's own frame nearest the error: where a named error was due
        ours = [f for f in frames if f'{os.sep}mmkd_yolo{os.sep}' in f.filename]
        if ours:
            f = ours[-1]
            where += (f' (package: mmkd_yolo/{f.filename.rsplit("mmkd_yolo" + os.sep, 1)[1]}'
                      f':{f.lineno} {f.name})')
        outcome = Outcome('crash', f'{type(e).__name__}: {str(e)[:400]} [at {where}]')
    finally:
        signal.signal(signal.SIGALRM, old)
    outcome.seconds = time.perf_counter() - start
    if outcome.kind != 'hang' and outcome.seconds > timeout:  # blocked in native code
        outcome = Outcome('hang', f'answered after {outcome.seconds:.1f} s > {timeout:.0f} s',
                          outcome.seconds)
    grew = _peak_rss() - peak
    if grew > MEMORY_LIMIT:
        outcome = Outcome('crash', f'peak memory rose by {grew >> 20} MiB ({outcome.detail})',
                          outcome.seconds)
    return outcome


@contextlib.contextmanager
def _inside(root: str) -> Iterator[None]:
    """The case's folder as cwd and as the cache (``MMKD_CACHE``): nothing leaks out."""
    cwd, cache = os.getcwd(), os.environ.get('MMKD_CACHE')
    os.environ['MMKD_CACHE'] = osp.join(root, 'cache')
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)
        if cache is None:
            os.environ.pop('MMKD_CACHE', None)
        else:
            os.environ['MMKD_CACHE'] = cache


def write_case(case: Case, root: str) -> str:
    """Write the case's files under ``root``; the path to give the reader."""
    marker = ROOT.encode()
    for name, data in case.files:
        path = osp.join(root, name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data.replace(marker, os.fsencode(root)))
    return osp.join(root, case.target)


def run_case(case: Case, base: Optional[str] = None, timeout: float = TIMEOUT) -> Outcome:
    """Write ``case`` to a fresh folder under ``base``, read it, judge the answer."""
    root = tempfile.mkdtemp(prefix='fuzz-', dir=base)
    try:
        path = write_case(case, root)
        reader = READERS[case.family]
        with _inside(root):
            outcome = classify(lambda: reader(path, dict(case.options)), timeout)
        if osp.exists(osp.join(root, CANARY)):
            outcome = Outcome('crash', f'the file ran code (it created {CANARY}); '
                              f'{outcome.kind}: {outcome.detail}', outcome.seconds)
        return outcome
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- the readers --------------------------------------------------------------------------
_configs: Dict[str, Any] = {}


def _config(path: str):
    if path not in _configs:
        from mmkd_yolo.apis import load_config
        _configs[path] = load_config(path)
    return _configs[path]


def read_data(path: str, options: dict) -> None:
    from mmkd_yolo.apis import apply_data_yaml
    apply_data_yaml(copy.deepcopy(_config(KD_CONFIG)), path,
                    splits=options.get('splits', ('train', 'val')))


def read_checkpoint(path: str, options: dict) -> None:
    from mmkd_yolo.converters import read_detector_weights
    read_detector_weights(path, use_ema=options.get('use_ema', True))


def read_onnx(path: str, options: dict) -> None:
    from mmkd_yolo.apis.onnx_detector import load_onnx_detector, onnx_test_cfg
    onnx_test_cfg(path)
    load_onnx_detector(path)


class WroteOutside(Exception):
    """A test protocol read from a model file wrote a file (not a named error: a crash)."""


def read_protocol(path: str, options: dict) -> None:
    """``onnx_test_cfg``, then the evaluator it gives on one image with one detection, as
    ``onnx_test.py`` evaluates."""
    import torch
    from mmengine.evaluator import Evaluator
    from mmengine.registry import DefaultScope

    from mmkd_yolo.apis.onnx_detector import onnx_test_cfg
    cfg, meta = onnx_test_cfg(path)
    # pycocotools prints its summary to stdout
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmyolo')), \
            contextlib.redirect_stdout(io.StringIO()):
        evaluator = Evaluator(copy.deepcopy(cfg.test_evaluator))
        evaluator.dataset_meta = dict(classes=meta['classes'])
        box = [2., 2., 20., 20.]
        evaluator.process([dict(
            img_id=0, ori_shape=(32, 32),
            pred_instances=dict(bboxes=torch.tensor([box]), scores=torch.tensor([0.9]),
                                labels=torch.tensor([0])),
            instances=[dict(bbox=box, bbox_label=0, ignore_flag=0)])])
        evaluator.evaluate(1)
    written = [f for f in os.listdir(osp.join(osp.dirname(path), OUTSIDE)) if f != '.keep']
    if written:
        raise WroteOutside(f'the protocol made the test write {written} in {OUTSIDE}/')


READERS: Dict[str, Callable[[str, dict], None]] = {
    'data.yaml': read_data, 'labels': read_data, 'checkpoint': read_checkpoint,
    'onnx': read_onnx, 'protocol': read_protocol}


def quiet() -> None:
    """Only errors from mmengine's logger and no warnings: thousands of inputs are read."""
    import logging
    import warnings

    from mmengine.logging import MMLogger
    warnings.simplefilter('ignore')
    logger = MMLogger.get_instance('mmkd_yolo_fuzz', log_level='ERROR')
    logger.setLevel(logging.ERROR)
    for handler in logger.handlers:
        handler.setLevel(logging.ERROR)
    try:
        import onnxruntime
        onnxruntime.set_default_logger_severity(4)  # fatal only
    except ImportError:  # pragma: no cover
        pass


# --- shared pieces --------------------------------------------------------------------------
#: Text without surrogates (they cannot be written as UTF-8).
_TEXT = st.text(st.characters(blacklist_categories=('Cs', )), max_size=20)
_FIELD_SEPS = (' ', '  ', '\t', ' \t ', '\u00a0', '\u2003', '\x0b', '\x0c', '\x1c', '\u3000')


def png_header(width: int, height: int, idat: bytes = b'') -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b'IDAT', idat or zlib.compress(b'\x00' * (3 * width + 1) * height))
            + chunk(b'IEND', b''))


_images: Dict[str, bytes] = {}


def image_bytes(kind: str = 'jpg') -> bytes:
    """A small valid image (16 x 12 px) of the given format."""
    if kind not in _images:
        from PIL import Image
        buf = io.BytesIO()
        img = Image.new('RGB', (16, 12), (90, 120, 200))
        img.save(buf, format={'jpg': 'JPEG', 'png': 'PNG', 'bmp': 'BMP'}[kind])
        _images[kind] = buf.getvalue()
    return _images[kind]


@st.composite
def garbled(draw, data: bytes) -> Tuple[bytes, str]:
    """``data`` cut, with bytes flipped, overwritten, inserted or deleted, or unchanged."""
    op = draw(st.sampled_from(['cut', 'cut', 'flip', 'flip', 'overwrite', 'insert', 'delete',
                               'none']))
    n = len(data)
    if op == 'none' or not n:
        return data, 'unchanged'
    at = draw(st.integers(0, n - 1))
    if op == 'cut':
        return data[:at], f'cut at byte {at} of {n}'
    if op == 'flip':
        flips = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 255)),
                              min_size=1, max_size=8))
        out = bytearray(data)
        for i, mask in flips:
            out[i] ^= mask
        return bytes(out), f'{len(flips)} bytes flipped at {sorted(i for i, _ in flips)}'
    junk = draw(st.binary(min_size=1, max_size=64))
    if op == 'overwrite':
        return data[:at] + junk + data[at + len(junk):], f'{len(junk)} bytes overwritten at {at}'
    if op == 'insert':
        return data[:at] + junk + data[at:], f'{len(junk)} bytes inserted at {at}'
    return data[:at] + data[at + len(junk):], f'{len(junk)} bytes deleted at {at}'


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | _TEXT,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(_TEXT, c, max_size=4), max_leaves=12)


# --- data.yaml ------------------------------------------------------------------------------
def _valid_tree() -> List[Tuple[str, bytes]]:
    """images/{train,val} with labels, an image list, and a broken image list."""
    jpg = image_bytes('jpg')
    files = []
    for split, name in (('train', 'a'), ('train', 'b'), ('val', 'c')):
        files.append((f'images/{split}/{name}.jpg', jpg))
        files.append((f'labels/{split}/{name}.txt', b'0 0.5 0.5 0.5 0.5\n1 0.2 0.3 0.1 0.1\n'))
    files.append(('train.txt', b'images/train/a.jpg\n./images/train/b.jpg\n'))
    return files


_PATHS = ['images/train', 'images/val', 'images', 'train.txt', 'list.txt', 'nope/dir',
          'data.yaml', 'labels/train', f'{ROOT}/images/train', f'{ROOT}/nope', '', '.',
          '/nonexistent-mmkd-fuzz/images', 'images/train/a.jpg', 'no\x00pe', '~/nope',
          'images/train/', 'IMAGES/TRAIN', 'images//train']


def _component(text: str) -> str:
    """A file name from free text: no way out of the case's folder, no NUL, <= 200 bytes."""
    name = text.replace('/', '_').replace('\\', '_').replace('..', '_').replace('\x00', '_')
    while len(os.fsencode(name)) > 200:
        name = name[:-1]
    return name


_PATH = st.sampled_from(_PATHS) | _TEXT.map(_component)
_PATH_VALUE = _PATH | st.lists(_PATH, max_size=3) | _JSON
_NAMES = (st.lists(_TEXT | st.integers(-3, 10**20) | st.floats() | st.none() | st.booleans(),
                   max_size=4)
          | st.dictionaries(st.integers(-2, 5) | _TEXT | st.floats(), _TEXT | st.integers(),
                            max_size=4)
          | st.sampled_from([['cat', 'dog'], {0: 'cat', 1: 'dog'}, {1: 'cat', 0: 'dog'},
                             {0: 'cat', 2: 'dog'}, ['cat'], [], {}, 'catdog', 2, None,
                             [['cat'], ['dog']], [{'a': 1}, 'dog'], ['cat', 'cat']])
          | _JSON)
_NC = (st.integers(-3, 5) | st.sampled_from([10**20, 2.0, 2.5, float('nan'), float('inf'), '2',
                                             'two', None, True, [2], {'a': 2}, -0.0])
       | _JSON)
_VALID_DOC = {'path': ROOT, 'train': 'images/train', 'val': 'images/val',
              'names': ['cat', 'dog']}


def yaml_alias_bomb(levels: int, width: int) -> str:
    """A data.yaml whose names are ``width ** levels`` once its aliases are expanded (a
    few hundred bytes of YAML: the parsed lists share their items)."""
    lines = ['a0: &a0 [x, x]']
    for i in range(1, levels):
        lines.append(f'a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * width) + ']')
    key = f'a{levels - 1}'
    return '\n'.join(lines) + (f'\npath: {ROOT}\ntrain: images/train\nval: images/val\n'
                               f'names: *{key}\n')


@st.composite
def _image_list(draw) -> bytes:
    lines = draw(st.lists(
        st.sampled_from(['images/train/a.jpg', '/nonexistent-mmkd-fuzz/images/x.jpg',
                         'images/train', 'nope.jpg', 'images/val/c.jpg', '', '   ',
                         f'{ROOT}/images/train/b.jpg', 'no\x00pe.jpg', 'labels/train/a.txt'])
        | _TEXT.map(_component), max_size=5))
    data = '\n'.join(lines).encode()
    if draw(st.booleans()):
        data += draw(st.binary(max_size=8))
    return data


@st.composite
def data_yaml_cases(draw) -> Case:
    """A valid YOLO tree with a generated ``data.yaml`` (and image list)."""
    files = _valid_tree()
    files.append(('list.txt', draw(_image_list())))
    style = draw(st.sampled_from(['mutated', 'mutated', 'mutated', 'random', 'text', 'bytes',
                                  'bomb']))
    if style == 'mutated':  # the valid file with 1-3 entries removed or replaced
        doc = dict(_VALID_DOC)
        edits = draw(st.lists(st.sampled_from(['path', 'train', 'val', 'names', 'nc', 'test',
                                               'download']), min_size=1, max_size=3))
        for key in edits:
            if draw(st.integers(0, 3)) == 0:
                doc.pop(key, None)
            elif key in ('names', ):
                doc[key] = draw(_NAMES)
            elif key == 'nc':
                doc[key] = draw(_NC)
            else:
                doc[key] = draw(_PATH_VALUE)
        text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))
        note = f'data.yaml with {edits} edited'
    elif style == 'random':
        doc = draw(st.fixed_dictionaries({}, optional={
            'path': _PATH_VALUE, 'train': _PATH_VALUE, 'val': _PATH_VALUE, 'names': _NAMES,
            'nc': _NC}) | _JSON)
        text = yaml.safe_dump(doc)
        note = 'random data.yaml'
    elif style == 'text':  # hand-written YAML: syntax errors, tabs, anchors, odd scalars
        pieces = draw(st.lists(st.sampled_from([
            f'path: {ROOT}', 'train: images/train', 'val: images/val', 'names: [cat, dog]',
            'nc: 2', 'names:\n  0: cat\n  1: dog', 'names: {0: cat, 0: dog}', 'train: [',
            'val: *nope', '\tnames: [a]', 'nc: 0x2', 'nc: 1e400', 'names: [yes, no]',
            '- a\n- b', '---\n---', ': :', 'train: !!python/object:os.system x',
            'val: !!binary aGVsbG8=', 'names: !!set {a, b}', '%YAML 9.9', '"unclosed',
            'nc: .nan', 'train: ~', 'names: 2024-01-01', 'path: !!int 3', 'nc: !!int abc',
            'val: !!timestamp 2024-99-99', 'names: ' + '[' * 3000,
            'names: ' + '[' * 100_000, '? [a]: b'])
            | _TEXT, min_size=1, max_size=6))
        text = '\n'.join(pieces)
        note = 'hand-written YAML'
    elif style == 'bytes':
        good = yaml.safe_dump(_VALID_DOC).encode()
        kind = draw(st.sampled_from(['random', 'latin1', 'utf16', 'bom', 'nul', 'garbled']))
        if kind == 'random':
            data = draw(st.binary(max_size=200))
        elif kind == 'latin1':
            data = good.replace(b'cat', 'chât'.encode('latin-1'))
        elif kind == 'utf16':
            data = good.decode().encode('utf-16')
        elif kind == 'bom':
            data = b'\xef\xbb\xbf' + good
        elif kind == 'nul':
            data = good.replace(b'dog', b'd\x00g')
        else:
            data, how = draw(garbled(good))
            kind = f'garbled ({how})'
        files.append(('data.yaml', data))
        return Case('data.yaml', f'data.yaml bytes: {kind}', tuple(files), 'data.yaml',
                    (('splits', ('train', 'val')), ))
    else:
        levels, width = draw(st.integers(2, 9)), draw(st.integers(2, 9))
        text = yaml_alias_bomb(levels, width)
        note = f'YAML alias bomb ({width}^{levels} names)'
    files.append(('data.yaml', text.encode('utf-8')))
    splits = draw(st.sampled_from([('train', 'val'), ('val', ), ('train', )]))
    return Case('data.yaml', note, tuple(files), 'data.yaml', (('splits', splits), ))


# --- labels ---------------------------------------------------------------------------------
_TOKEN = (st.floats(-0.5, 1.5).map(lambda v: f'{v:.6g}')
          | st.integers(-3, 5).map(str)
          | st.sampled_from(['0', '1', '0.5', 'nan', 'NaN', 'inf', '-inf', '1e400', '-1e400',
                             '1e-400', '-0', '+1', '0x1', '1_0', '٣', '½', '1,5', '0.5.5',
                             '9' * 400, '1e308', '-1e308', '2147483648', '1.0000001',
                             '1.000001', '-0.000001', '-0.0000011', '', 'a', 'cat', '\x00',
                             '\ufeff0', 'None', '0.5\u200b'])
          | _TEXT.filter(lambda s: not s.isspace()))


@st.composite
def _label_line(draw) -> str:
    kind = draw(st.sampled_from(['box', 'polygon', 'fields', 'fields', 'blank']))
    unit = st.floats(0, 1).map(lambda v: f'{v:.4f}')
    if kind == 'box':
        tokens = [str(draw(st.integers(0, 2)))] + draw(st.lists(unit, min_size=4, max_size=4))
    elif kind == 'polygon':
        points = draw(st.integers(3, 8))
        tokens = [str(draw(st.integers(0, 2)))] + draw(
            st.lists(unit, min_size=2 * points, max_size=2 * points))
    elif kind == 'fields':
        tokens = draw(st.lists(_TOKEN, max_size=13))
    else:
        return draw(st.sampled_from(['', ' ', '\t', '  \t ', '\x0c', '\u00a0', '\u3000']))
    sep = draw(st.sampled_from(_FIELD_SEPS))
    return sep.join(tokens)


@st.composite
def _label_bytes(draw) -> Tuple[bytes, str]:
    kind = draw(st.sampled_from(['lines', 'lines', 'lines', 'lines', 'duplicate', 'empty',
                                 'binary', 'latin1', 'utf16', 'bom', 'huge-polygon']))
    if kind == 'empty':
        return b'', 'empty file'
    if kind == 'binary':
        return draw(st.binary(max_size=64)), 'random bytes'
    if kind == 'huge-polygon':
        n = draw(st.sampled_from([7, 999, 20001]))
        return ('0 ' + ' '.join(['0.5'] * (n - 1)) + '\n').encode(), f'{n}-field polygon'
    lines = draw(st.lists(_label_line(), min_size=1, max_size=6))
    if kind == 'duplicate':
        lines = lines * 3
    newline = draw(st.sampled_from(['\n', '\r\n', '\r', '\n\n']))
    text = newline.join(lines) + draw(st.sampled_from(['', newline]))
    if kind == 'latin1':
        return text.encode('utf-8', 'replace') + 'é'.encode('latin-1'), 'a Latin-1 byte'
    if kind == 'utf16':
        return text.encode('utf-16'), 'UTF-16'
    if kind == 'bom':
        return b'\xef\xbb\xbf' + text.encode('utf-8'), 'UTF-8 with BOM'
    return text.encode('utf-8'), f'{len(lines)} lines ({kind})'


_NAME_PARTS = ['a', 'b c', 'ünï', '[x]', '*', '?', '-dash', 'x' * 120, '\udcff', 'a.b.c',
               '.hidden', 'images', 'labels', '#1', "o'q", '$HOME', 'CON', 'a\nb', '%s', '日本']


@st.composite
def _image(draw) -> Tuple[bytes, str, str]:
    """(bytes, extension, note): mostly a valid image."""
    kind = draw(st.sampled_from(['jpg'] * 6 + ['png', 'bmp', 'garbage', 'cut', 'bomb', 'empty']))
    if kind in ('jpg', 'png', 'bmp'):
        ext = draw(st.sampled_from({'jpg': ['.jpg', '.JPG', '.jpeg'], 'png': ['.png'],
                                    'bmp': ['.bmp']}[kind]))
        return image_bytes(kind), ext, kind
    ext = draw(st.sampled_from(['.jpg', '.png', '.webp', '.tif']))
    if kind == 'garbage':
        return draw(st.binary(max_size=64)), ext, 'garbage image'
    if kind == 'cut':
        data = image_bytes('jpg')
        return data[:draw(st.integers(0, len(data) - 1))], ext, 'truncated JPEG'
    if kind == 'bomb':
        side = draw(st.sampled_from([20000, 65535, 100000]))
        data = png_header(side, side, idat=zlib.compress(b'\x00'))
        return data, '.png', f'{side}^2 px PNG header'
    return b'', ext, 'empty image file'


@st.composite
def label_cases(draw) -> Case:
    """A valid ``data.yaml`` over generated images and label files."""
    n = draw(st.integers(1, 3))
    stems = draw(st.lists(st.sampled_from(_NAME_PARTS) | _TEXT.map(_component).filter(
        lambda s: s not in ('', '.')), min_size=n, max_size=n, unique=True))
    sub = draw(st.sampled_from(['', 'sub/', 'images/', 'a b/', '[x]/']))
    files, notes = [], []
    for stem in stems:
        data, ext, inote = draw(_image())
        files.append((f'images/train/{sub}{stem}{ext}', data))
        if draw(st.integers(0, 5)) == 0:
            notes.append(f'{stem!r}: {inote}, no label file')
            continue
        text, lnote = draw(_label_bytes())
        files.append((f'labels/train/{sub}{stem}.txt', text))
        notes.append(f'{stem!r}: {inote}, {lnote}')
    for orphan in draw(st.lists(st.sampled_from(_NAME_PARTS), max_size=2, unique=True)):
        if orphan not in stems:
            files.append((f'labels/train/{orphan}.txt', b'0 0.5 0.5 0.1 0.1\n'))
            notes.append(f'orphan label {orphan!r}')
    root_dir = draw(st.sampled_from(['', 'my data/', 'd[1]/', 'ü/']))
    files = [(root_dir + name, data) for name, data in files]
    names = draw(st.sampled_from([['cat', 'dog', 'bird'], ['cat'], {0: 'cat', 1: 'dog'}]))
    doc = {'path': ROOT + '/' + root_dir, 'train': 'images/train', 'val': 'images/train',
           'names': names}
    files.append(('data.yaml', yaml.safe_dump(doc).encode()))
    return Case('labels', '; '.join(notes), tuple(files), 'data.yaml',
                (('splits', ('train', 'val')), ))


# --- checkpoints ----------------------------------------------------------------------------
def torch_bytes(obj: Any, legacy: bool = False) -> bytes:
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    data = buf.getvalue()
    return _stable_storage_keys(data, obj) if legacy else data


def _stable_storage_keys(data: bytes, obj: Any) -> bytes:
    """The legacy format names each storage by its memory address (``str(_cdata)``), so
    the same object saved twice differs in bytes and even in length, and hypothesis,
    replaying a case, finds that its strategy drew differently (FlakyStrategyDefinition).
    Each address becomes the rank of its first appearance in the pickle, zero-padded to a
    fixed width (the loader reads the records in the order of the stored key list, which
    is renamed with them)."""
    import struct

    import torch
    keys, stack = set(), [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            keys.add(str(item.untyped_storage()._cdata))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    def stored(key: bytes) -> bytes:
        return b'X' + struct.pack('<I', len(key)) + key

    found = sorted((data.find(stored(k.encode())), k.encode()) for k in keys)
    renamed = {key: f'{rank:020d}'.encode() for rank, (_, key) in enumerate(found)}
    for key, new in renamed.items():  # 20-digit names: no address is one
        data = data.replace(stored(key), stored(new))
    return data


def _tensor(shape: List[int], dtype: str, value: float):
    import torch
    return torch.full(shape, value).to(getattr(torch, dtype))


def _expanded(numel: int):
    """A tensor declaring ``numel`` elements over one stored element (stride 0): a huge
    declared size that costs nothing to store."""
    import torch
    return torch.zeros(1).expand(numel)


_TENSOR = (st.builds(_tensor, st.lists(st.integers(0, 3), max_size=3),
                     st.sampled_from(['float32', 'float16', 'int64', 'uint8', 'bool']),
                     st.floats(-2, 2))
           | st.sampled_from([2**28, 2**31, 2**40]).map(_expanded))


def _np_leaf(kind: int, value: float):
    import numpy as np
    return [np.float64(value), np.int64(int(value)), np.arange(3, dtype=np.float32),
            np.zeros((0, 2)), np.bool_(value > 0)][kind]


_LEAF = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | _TEXT
         | st.binary(max_size=8) | _TENSOR | st.builds(_np_leaf, st.integers(0, 4),
                                                        st.floats(-5, 5)))
_OBJ = st.recursive(_LEAF, lambda c: (
    st.lists(c, max_size=4) | st.lists(c, max_size=3).map(tuple)
    | st.dictionaries(_TEXT | st.integers(-2, 3), c, max_size=4)
    | st.dictionaries(_TEXT, c, max_size=3).map(OrderedDict)), max_leaves=10)
_KEYS = st.sampled_from(['backbone.stem.conv.weight', 'module.backbone.stem.conv.weight',
                         'architecture.backbone.stem.conv.weight', 'teacher.neck.x',
                         'bbox_head.head_module.convs_pred.0.weight', 'module.', '',
                         'architecture.', 'data_preprocessor.mean']) | _TEXT
_STATE = st.dictionaries(_KEYS | st.integers(0, 3), _TENSOR | _OBJ, max_size=5)
_LAYOUT = st.one_of(
    _STATE,
    st.fixed_dictionaries({}, optional={
        'state_dict': _STATE | _OBJ, 'ema_state_dict': _STATE | _OBJ, 'meta': _OBJ,
        'model': _STATE | _OBJ, 'optimizer': _OBJ, 'message_hub': _OBJ}),
    _OBJ)


def _zip_members(data: bytes) -> Dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


class _Call:
    """Pickles as a call of ``func(*args)``: what a malicious checkpoint is."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_payloads() -> Dict[str, Any]:
    import builtins
    import importlib
    import subprocess
    return {
        'os.system': _Call(os.system, f'touch {CANARY}'),
        'builtins.eval': _Call(builtins.eval, f"open({CANARY!r}, 'w').close()"),
        'builtins.exec': _Call(builtins.exec, f"open({CANARY!r}, 'w').close()"),
        'subprocess.call': _Call(subprocess.call, ['touch', CANARY]),
        'builtins.open': _Call(builtins.open, CANARY, 'w'),
        'importlib.import_module': _Call(importlib.import_module, 'os'),
        'builtins.getattr': _Call(getattr, _Call(importlib.import_module, 'os'), 'system'),
    }


def _with_numel(pkl: bytes, numel: int) -> bytes:
    """``pkl`` (torch's data.pkl or a legacy file) with its first storage's element count
    replaced (the ``'cpu', numel`` of the persistent id)."""
    at = pkl.find(b'X\x03\x00\x00\x00cpu')
    if at < 0:
        return pkl
    at += 8
    if pkl[at:at + 1] == b'q':  # BINPUT
        at += 2
    end = at + {b'K': 2, b'M': 3, b'J': 5}.get(pkl[at:at + 1], 0)
    if end == at:
        return pkl
    if 0 <= numel < 2**31:
        op = b'J' + struct.pack('<i', numel)
    else:
        raw = numel.to_bytes((numel.bit_length() + 8) // 8, 'little', signed=True)
        op = b'\x8a' + bytes([len(raw)]) + raw
    return pkl[:at] + op + pkl[end:]


def declare_sizes(data: bytes, member: Optional[str], comp: Optional[int],
                  size: Optional[int]) -> bytes:
    """A zip whose headers (central directory and local) claim other sizes for
    ``member`` (every member if None)."""
    out = bytearray(data)
    for sig, name_len_at, name_at, comp_at, size_at in ((b'PK\x01\x02', 28, 46, 20, 24),
                                                          (b'PK\x03\x04', 26, 30, 18, 22)):
        i = out.find(sig)
        while i >= 0:
            n = struct.unpack_from('<H', out, i + name_len_at)[0]
            name = bytes(out[i + name_at:i + name_at + n]).decode('utf-8', 'replace')
            if member is None or name.endswith(member):
                if comp is not None:
                    struct.pack_into('<I', out, i + comp_at, comp)
                if size is not None:
                    struct.pack_into('<I', out, i + size_at, size)
            i = out.find(sig, i + 4)
    return bytes(out)


# Ultralytics-like pickles: classes named as YOLOv5's, pickled without its source tree.
_FAKE_MODULES = {'models.common': ('Conv', 'C3', 'SPPF', 'Focus', 'Concat', 'Bottleneck',
                                   'Sequential'),
                 'models.yolo': ('Model', 'Detect', 'Segment', 'Classify')}
_fake_classes: Dict[str, type] = {}


def _fake(name: str) -> type:
    if not _fake_classes:
        for module, names in _FAKE_MODULES.items():
            for n in names:
                _fake_classes[n] = type(n, (), {'__module__': module, '__qualname__': n})
    return _fake_classes[name]


@contextlib.contextmanager
def fake_yolov5_modules() -> Iterator[None]:
    """``models.common`` / ``models.yolo`` importable while pickling only."""
    modules = {'models': types.ModuleType('models')}
    for module, names in _FAKE_MODULES.items():
        modules[module] = types.ModuleType(module)
        for n in names:
            setattr(modules[module], n, _fake(n))
    with installed_modules(modules):
        yield


def module_node(cls: str, modules=None, params=None, buffers=None, **attrs):
    obj = _fake(cls)()
    obj.__dict__.update(_modules=dict(modules or {}), _parameters=dict(params or {}),
                        _buffers=dict(buffers or {}), **attrs)
    return obj


_LAYERS = {**{i: 'Conv' for i in (0, 1, 3, 5, 7, 10, 14, 18, 21)},
           **{i: 'C3' for i in (2, 4, 6, 8, 13, 17, 20, 23)}, 9: 'SPPF', 11: 'Concat',
           12: 'Concat', 15: 'Concat', 16: 'Concat', 19: 'Concat', 22: 'Concat'}


def ultralytics_skeleton():
    """A tiny YOLOv5 v6 P5 model tree (1-channel convs) the converter accepts."""
    import torch

    def conv():  # Ultralytics' Conv: .conv (nn.Conv2d) and .bn
        return module_node('Conv', modules={'conv': module_node('Conv', params={
            'weight': torch.zeros(4, 1, 1, 1)})})
    layers = {}
    for i, cls in _LAYERS.items():
        if cls == 'Conv':
            layers[str(i)] = conv()
        elif cls == 'Concat':
            layers[str(i)] = module_node(cls)
        else:  # C3, SPPF
            layers[str(i)] = module_node(cls, modules={'cv1': conv(), 'cv2': conv()})
    heads = module_node('Sequential', modules={str(i): module_node('Conv', params={
        'weight': torch.zeros(21, 1, 1, 1), 'bias': torch.zeros(21)}) for i in range(3)})
    layers['24'] = module_node('Detect', modules={'m': heads},
                         buffers={'anchors': torch.ones(3, 3, 2)}, nc=2,
                         stride=torch.tensor([8., 16., 32.]))
    model = module_node('Model', modules={'model': module_node('Sequential', modules=layers)},
                  yaml={'nc': 2, 'depth_multiple': 0.33, 'width_multiple': 0.25},
                  names=['cat', 'dog'], stride=torch.tensor([8., 16., 32.]))
    return model


@st.composite
def _ultralytics(draw) -> Tuple[Any, str]:
    """An Ultralytics-like checkpoint dict with 0-3 parts of its model tree broken."""
    model = ultralytics_skeleton()
    seq = model._modules['model']
    layers = seq._modules
    edits = []
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from([
            'drop layer', 'junk attribute', 'levels', 'focus', 'last not Detect', 'cycle',
            'shared DAG', 'extra layer', 'junk tensor', 'names', 'yaml', 'junk key']))
        edits.append(what)
        if what == 'drop layer' and layers:
            layers.pop(draw(st.sampled_from(sorted(layers))))
        elif what == 'junk attribute':
            target = draw(st.sampled_from([model, seq, *layers.values()]))
            attr = draw(st.sampled_from(['_modules', '_parameters', '_buffers', 'nc',
                                         'stride', 'yaml', 'names', 'pickled_class']))
            target.__dict__[attr] = draw(_OBJ)
        elif what == 'levels' and '24' in layers:
            heads = layers['24']._modules.get('m')
            if heads is not None and hasattr(heads, '_modules'):
                n = draw(st.sampled_from([0, 1, 2, 4]))
                heads._modules = {str(i): module_node('Conv') for i in range(n)}
        elif what == 'focus' and '0' in layers:
            layers['0'] = module_node('Focus', modules=layers['0']._modules)
        elif what == 'last not Detect' and '24' in layers:
            layers['24'] = module_node(draw(st.sampled_from(['Segment', 'Classify', 'Conv'])),
                                 modules=layers['24']._modules)
        elif what == 'cycle':
            victim = draw(st.sampled_from(sorted(layers) or ['0']))
            if victim in layers:
                layers[victim]._modules['loop'] = model
        elif what == 'shared DAG':  # 2^depth paths through depth nodes
            node = module_node('Conv', params={'w': _tensor([1], 'float32', 0.)})
            for _ in range(draw(st.integers(20, 60))):
                node = module_node('Conv', modules={'a': node, 'b': node})
            layers[draw(st.sampled_from(sorted(layers) or ['0']))] = node
        elif what == 'extra layer':
            layers[str(len(layers))] = layers.pop('24', module_node('Detect'))
        elif what == 'junk tensor' and '0' in layers:
            stem = layers['0']._modules.get('conv')
            if stem is not None and hasattr(stem, '_modules'):
                stem._modules['conv'] = module_node('Conv', params={'weight': draw(_TENSOR | _OBJ)})
        elif what == 'names':
            model.names = draw(_NAMES)
        elif what == 'yaml':
            model.yaml = draw(_OBJ)
        elif what == 'junk key':
            layers[draw(_TEXT)] = module_node('Conv', params={
                'weight': _tensor([1], 'float32', 0.)})
    where = draw(st.sampled_from(['model', 'ema', 'both']))
    ckpt = dict(epoch=-1, optimizer=None, date='2026',
                model=model if where in ('model', 'both') else None,
                ema=model if where in ('ema', 'both') else None)
    if draw(st.integers(0, 4)) == 0:
        ckpt[draw(st.sampled_from(['model', 'ema']))] = draw(_OBJ)
        edits.append('model replaced')
    return ckpt, f'Ultralytics-like .pt ({", ".join(edits) or "intact"}, under {where})'


@st.composite
def checkpoint_cases(draw) -> Case:
    """A generated checkpoint, intact or cut / garbled, or something else named .pth."""
    style = draw(st.sampled_from(['saved'] * 5 + ['ultralytics'] * 3 + [
        'empty', 'random', 'wrong zip', 'evil', 'huge numel', 'huge zip', 'plain pickle',
        'legacy huge']))
    use_ema = draw(st.booleans())
    name = draw(st.sampled_from(['ckpt.pth', 'w.pt', 'x', 'ü.pth']))
    if style == 'saved':
        obj = draw(_LAYOUT)
        data = torch_bytes(obj, legacy=draw(st.integers(0, 3)) == 0)
        data, how = draw(garbled(data))
        note = f'torch.save of {type(obj).__name__}, {how}'
    elif style == 'ultralytics':
        obj, note = draw(_ultralytics())
        with fake_yolov5_modules():
            data = torch_bytes(obj)
        if draw(st.integers(0, 3)) == 0:
            data, how = draw(garbled(data))
            note += f', {how}'
    elif style == 'empty':
        data, note = b'', 'zero bytes'
    elif style == 'random':
        head = draw(st.sampled_from([b'', b'PK\x03\x04', b'\x80\x02', b'\x80\x02\x8a\n',
                                     b'\x89HDF', b'\x08\x07\x12']))
        data, note = head + draw(st.binary(max_size=512)), 'random bytes'
    elif style == 'wrong zip':
        members = draw(st.dictionaries(
            st.sampled_from(['archive/data.pkl', 'archive/version', 'archive/data/0',
                             'archive/byteorder', 'data.pkl', 'a/b/c', '../evil']) | _TEXT,
            st.binary(max_size=64) | st.sampled_from([pickle.dumps({'w': 1}), b'3\n',
                                                       pickle.dumps([1, 2])]),
            max_size=5))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w', draw(st.sampled_from([zipfile.ZIP_STORED,
                                                             zipfile.ZIP_DEFLATED]))) as z:
            for member, content in members.items():
                z.writestr(member or 'x', content)
        data, note = buf.getvalue(), f'zip with members {sorted(members)}'
    elif style == 'evil':
        which = draw(st.sampled_from(sorted(_evil_payloads())))
        payload = _evil_payloads()[which]
        wrap = draw(st.sampled_from(['top', 'in state_dict', 'in meta', 'ultralytics',
                                     'legacy']))
        if wrap == 'ultralytics':  # is_ultralytics_checkpoint says yes: the other loader
            with fake_yolov5_modules():
                data = torch_bytes(dict(model=module_node('Model', hook=payload)))
        elif wrap == 'legacy':
            data = torch_bytes({'state_dict': {'w': payload}}, legacy=True)
        else:
            obj = {'top': payload, 'in state_dict': {'state_dict': {'w': payload}},
                   'in meta': {'state_dict': {'w': _tensor([1], 'float32', 0.)},
                               'meta': payload}}[wrap]
            data = torch_bytes(obj)
        note = f'pickle calling {which} ({wrap})'
    elif style in ('huge numel', 'legacy huge'):
        numel = draw(st.sampled_from([2**31 - 1, 2**33, 2**40, 2**62, 2**64, -1, -2**40]))
        sd = {'w': _tensor([2, 3], 'float32', 1.)}
        if style == 'huge numel':
            members = _zip_members(torch_bytes(sd))
            for member in members:
                if member.endswith('data.pkl'):
                    members[member] = _with_numel(members[member], numel)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as z:
                for member, content in members.items():
                    z.writestr(member, content)
            data = buf.getvalue()
            if draw(st.booleans()) and 0 < numel * 4 < 2**32:  # the record claims it too
                data = declare_sizes(data, 'data/0', numel * 4, numel * 4)
        else:
            data = _with_numel(torch_bytes(sd, legacy=True), numel)
        note = f'{style}: storage of {numel} elements declared'
    elif style == 'huge zip':
        member = draw(st.sampled_from([None, 'data.pkl', 'data/0', 'version', 'byteorder']))
        comp = draw(st.sampled_from([None, 0, 0xFFFFFFF0, 0xFFFFFFFF, 2**31]))
        size = draw(st.sampled_from([None, 0, 0xFFFFFFF0, 0xFFFFFFFF, 2**31, 2**30]))
        data = declare_sizes(torch_bytes({'w': _tensor([2, 3], 'float32', 1.)}), member,
                             comp, size)
        note = f'zip headers claim {member or "every member"}: compressed {comp}, size {size}'
    else:  # a pickle, not torch's format
        obj = draw(_OBJ)
        data = pickle.dumps(obj, protocol=draw(st.integers(0, 5)))
        note = f'plain pickle of {type(obj).__name__}'
    return Case('checkpoint', note, ((name, data), ), name, (('use_ema', use_ema), ))


# --- ONNX -----------------------------------------------------------------------------------
_onnx_base: Dict[str, Any] = {}


def onnx_model_bytes(meta: Optional[Any] = None, raw_meta: Optional[str] = None,
                     key: Optional[str] = None, dynamic: bool = False) -> bytes:
    """A tiny valid ONNX graph (images -> boxes, scores) with ``meta`` as JSON (or
    ``raw_meta`` as it is) under the exporter's metadata key; no metadata if both None."""
    from onnx import TensorProto, helper

    from mmkd_yolo.deploy.onnx_export import META_KEY
    batch = 'batch' if dynamic else 1
    images = helper.make_tensor_value_info('images', TensorProto.FLOAT, [batch, 3, 32, 32])
    boxes = helper.make_tensor_value_info('boxes', TensorProto.FLOAT, [batch, None, 4])
    scores = helper.make_tensor_value_info('scores', TensorProto.FLOAT, [batch, None, 2])
    nodes = [
        helper.make_node('ReduceMean', ['images'], ['pooled'], axes=[1], keepdims=0),
        helper.make_node('Flatten', ['pooled'], ['flat'], axis=1),
        helper.make_node('Unsqueeze', ['flat', 'axis2'], ['col']),
        helper.make_node('Concat', ['col', 'col', 'col', 'col'], ['boxes'], axis=2),
        helper.make_node('Concat', ['col', 'col'], ['scores'], axis=2)]
    axis2 = helper.make_tensor('axis2', TensorProto.INT64, [1], [2])
    graph = helper.make_graph(nodes, 'fuzz', [images], [boxes, scores], initializer=[axis2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    if meta is not None or raw_meta is not None:
        entry = model.metadata_props.add()
        entry.key = key or META_KEY
        entry.value = raw_meta if raw_meta is not None else json.dumps(meta)
    return model.SerializeToString()


def valid_onnx_meta() -> dict:
    """What ``export_detector_onnx`` stores for the student config (class names, graph
    settings, test protocol), for a 32 px static graph."""
    if 'meta' not in _onnx_base:
        from mmengine.config import Config

        from mmkd_yolo.apis.config import detector_cfgs
        from mmkd_yolo.apis.detector import TEST_KEYS
        from mmkd_yolo.deploy.protocol import protocol_from_cfg
        cfg = _config(STUDENT_CONFIG)
        test_cfg = Config({k: cfg[k] for k in TEST_KEYS if k in cfg})
        test_cfg.model = detector_cfgs(cfg)[0]
        _onnx_base['meta'] = dict(classes=['cat', 'dog'], img_size=32, batch=1,
                                  dynamic=False, nms=None,
                                  protocol=protocol_from_cfg(test_cfg))
    return json.loads(json.dumps(_onnx_base['meta']))


def _paths(node: Any, prefix: Tuple = ()) -> List[Tuple]:
    """Every key/index path in a JSON document."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k, ))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i, ))
    return out


@st.composite
def _mutated_meta(draw) -> Tuple[Any, str]:
    meta = valid_onnx_meta()
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(meta) if p]
        if not paths or not isinstance(meta, dict):
            break
        path = draw(st.sampled_from(paths))
        parent = meta
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(['delete', 'replace', 'replace', 'type']))
        where = '/'.join(map(str, path))
        if op == 'delete' and isinstance(parent, dict):
            del parent[path[-1]]
            edits.append(f'delete {where}')
            continue
        if op == 'type':
            old = parent[path[-1]]
            new = draw(st.sampled_from(
                [str(old), [old], {'v': old}, None, -1, 0, 1.5, True, '', 10**30]))
        else:
            new = draw(_JSON)
        parent[path[-1]] = new
        edits.append(f'{where} = {json.dumps(new)[:60]}')
    return meta, f'metadata with {edits}'


@st.composite
def onnx_cases(draw) -> Case:
    """The tiny graph with generated metadata, or its bytes cut and garbled."""
    style = draw(st.sampled_from(['mutated'] * 4 + ['intact', 'none', 'json', 'text', 'key',
                                                    'bytes', 'bytes', 'random']))
    dynamic = draw(st.booleans())
    if style == 'intact':
        meta = valid_onnx_meta()
        meta['dynamic'] = dynamic
        data, note = onnx_model_bytes(meta, dynamic=dynamic), 'valid metadata'
    elif style == 'mutated':
        meta, note = draw(_mutated_meta())
        data = onnx_model_bytes(meta, dynamic=dynamic)
    elif style == 'none':
        data, note = onnx_model_bytes(), 'no metadata'
    elif style == 'json':
        meta = draw(_JSON)
        data, note = onnx_model_bytes(meta), f'metadata {json.dumps(meta)[:80]}'
    elif style == 'text':
        raw = draw(_TEXT | st.sampled_from(['', '{', 'null', 'NaN', '[]', '{"a": NaN}',
                                            '{"classes": ["a"]} x', '"\\ud800"',
                                            '{"protocol": "x"}', '1e400', '[' * 10000]))
        data, note = onnx_model_bytes(raw_meta=raw), f'metadata text {raw[:60]!r}'
    elif style == 'key':
        data = onnx_model_bytes(raw_meta=json.dumps(valid_onnx_meta()),
                                key=draw(st.sampled_from(['config', 'meta', '', 'MMKD_YOLO'])))
        note = 'metadata under another key'
    elif style == 'bytes':
        data, note = draw(garbled(onnx_model_bytes(valid_onnx_meta())))
        note = f'valid file, {note}'
    else:
        data, note = draw(st.binary(max_size=512)), 'random bytes'
    return Case('onnx', note, (('model.onnx', data), ), 'model.onnx')


# --- ONNX test protocol ---------------------------------------------------------------------
#: Entries a crafted protocol adds to one of its mappings: outputs, storage, imports, and
#: more than any test needs. Paths are relative (the reader runs in the case's folder):
#: the metadata is a length-prefixed protobuf string, so :data:`ROOT` cannot be filled in.
_HOSTILE_ENTRIES = [
    ('outfile_prefix', f'{OUTSIDE}/results'), ('outfile_prefix', f'./{OUTSIDE}/r'),
    ('format_only', True), ('collect_dir', f'{OUTSIDE}/'),
    ('backend_args', {'backend': 'petrel'}), ('file_client_args', {'backend': 'disk'}),
    ('ann_file', f'{OUTSIDE}/a.json'), ('data_root', f'{OUTSIDE}/'),
    ('custom_imports', {'imports': ['os']}), ('resource_limit', 10**6),
    ('use_mp_eval', True), ('prefix', 'x'), ('num_workers', 64), ('batch_size', 10**6),
    ('scale', [10**5, 10**5]), ('img_size', 10**5), ('max_per_img', 10**9),
    ('persistent_workers', True), ('type', 'CocoMetric')]
_NUMBERS = (st.integers(-2**40, 2**40) | st.floats()
            | st.sampled_from([0, 1, -1, 64, 4097, 2**31, 0.5, 1.5, 255.5]))


def _mappings(node: Any, prefix: Tuple = ()) -> List[Tuple[Tuple, dict]]:
    """Every mapping in a JSON document, with its key/index path."""
    out = [(prefix, node)] if isinstance(node, dict) else []
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for k, v in items:
        out += _mappings(v, prefix + (k, ))
    return out


@st.composite
def protocol_cases(draw) -> Case:
    """The tiny graph with a test protocol that asks for outputs, storage or imports, or
    has numbers out of range: what a crafted file would carry."""
    meta = valid_onnx_meta()
    protocol = meta['protocol']
    edits = []
    if draw(st.booleans()):  # the COCO metric told to write its results somewhere
        protocol['evaluator'].update(format_only=True, outfile_prefix=f'{OUTSIDE}/r')
        edits.append('evaluator: format_only, outfile_prefix')
    for _ in range(draw(st.integers(0 if edits else 1, 3))):
        numbers = [p for p in _paths(protocol)
                   if p and type(_at(protocol, p)) in (int, float)]  # not bools
        if numbers and draw(st.booleans()):
            path = draw(st.sampled_from(numbers))
            value = draw(_NUMBERS)
            _at(protocol, path[:-1])[path[-1]] = value
            edits.append(f'{"/".join(map(str, path))} = {value!r}')
        else:
            path, mapping = draw(st.sampled_from(_mappings(protocol)))
            key, value = draw(st.sampled_from(_HOSTILE_ENTRIES))
            mapping[key] = value
            edits.append(f'{"/".join(map(str, path + (key, )))} = {value!r}')
    return Case('protocol', f'protocol with {edits}',
                (('model.onnx', onnx_model_bytes(meta)), (f'{OUTSIDE}/.keep', b'')),
                'model.onnx')


def _at(node: Any, path: Tuple) -> Any:
    for part in path:
        node = node[part]
    return node


STRATEGIES = {'data.yaml': data_yaml_cases(), 'labels': label_cases(),
              'checkpoint': checkpoint_cases(), 'onnx': onnx_cases(),
              'protocol': protocol_cases()}


def warm_up(base: Optional[str] = None) -> Dict[str, Outcome]:
    """Read one valid input per family (imports, registries, configs) before timing."""
    quiet()
    valid = {
        'data.yaml': Case('data.yaml', 'valid', tuple(_valid_tree()) + (
            ('data.yaml', yaml.safe_dump(_VALID_DOC).encode()), ), 'data.yaml'),
        'checkpoint': Case('checkpoint', 'valid', (('w.pth', torch_bytes(
            {'w': _tensor([1], 'float32', 0.)})), ), 'w.pth'),
        'onnx': Case('onnx', 'valid', (('m.onnx', onnx_model_bytes(valid_onnx_meta())), ),
                     'm.onnx'),
        'protocol': Case('protocol', 'valid', (
            ('m.onnx', onnx_model_bytes(valid_onnx_meta())), (f'{OUTSIDE}/.keep', b'')),
            'm.onnx'),
    }
    valid['labels'] = valid['data.yaml']
    with fake_yolov5_modules():
        ultra = torch_bytes(dict(model=ultralytics_skeleton(), ema=None))
    outcomes = {family: run_case(case, base, timeout=300) for family, case in valid.items()}
    outcomes['ultralytics'] = run_case(Case('checkpoint', 'valid Ultralytics', (
        ('u.pt', ultra), ), 'u.pt'), base, timeout=300)
    return outcomes

