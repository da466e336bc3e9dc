"""The package's layers: every module imports only its own layer or the ones below.

Read from the source (``ast``), so a new import that reaches up fails here by name.
"""
import ast
import glob
import os.path as osp

import pytest

from .conftest import REPO

PACKAGE = osp.join(REPO, 'mmkd_yolo')

#: Bottom to top. A module may import mmkd_yolo modules of its own layer or below.
LAYERS = {
    'errors': 0, 'version': 0, 'registry': 0,
    'fileio': 1,
    'compat': 2,
    'models': 3, 'losses': 3, 'engine': 3, 'datasets': 3, 'converters': 3,
    'visualization': 3, 'evaluation': 3,
    'algorithms': 4, 'deploy': 4,
    'apis': 5,
    'analysis': 6,  # evaluates checkpoints as tools/test.py does (apis) and compares them
}


def _modules():
    for path in sorted(glob.glob(osp.join(PACKAGE, '**', '*.py'), recursive=True)):
        rel = osp.relpath(path, REPO)[:-3].replace(osp.sep, '.')
        if rel == 'mmkd_yolo.__init__':
            continue  # the package root imports everything to register it
        yield path, rel


def _component(module: str) -> str:
    return module.split('.')[1]


def _imports(path: str, module: str):
    """Absolute names of the mmkd_yolo modules that ``path`` imports (also inside
    functions)."""
    package = module[:-len('.__init__')] if module.endswith('__init__') else \
        module.rsplit('.', 1)[0]
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('mmkd_yolo.'):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if not target.startswith('mmkd_yolo'):
                continue
            if target == 'mmkd_yolo':  # from mmkd_yolo import x: x is the component
                for alias in node.names:
                    yield f'mmkd_yolo.{alias.name}', node.lineno
            else:
                yield target, node.lineno


def test_every_component_has_a_layer():
    components = {_component(m) for _, m in _modules()}
    assert components <= set(LAYERS), components - set(LAYERS)


@pytest.mark.parametrize('path,module', list(_modules()), ids=lambda x: str(x))
def test_imports_point_down(path, module):
    own = LAYERS[_component(module)]
    upward = [f'line {line}: {target} (layer {LAYERS[_component(target)]})'
              for target, line in _imports(path, module)
              if LAYERS[_component(target)] > own]
    assert not upward, f'{module} (layer {own}) imports upward: {upward}'


def test_the_check_sees_an_upward_import(tmp_path):
    """The reader itself: a relative import from a lower layer is resolved and caught."""
    fake = tmp_path / 'mod.py'
    fake.write_text('from ..apis import prepare_train_cfg\n'
                    'def f():\n    from ..algorithms import YOLOv5Distill\n')
    found = {t for t, _ in _imports(str(fake), 'mmkd_yolo.fileio.mod')}
    assert found == {'mmkd_yolo.apis', 'mmkd_yolo.algorithms'}
