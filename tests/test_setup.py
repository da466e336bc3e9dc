"""The package as users install it: a wheel with its configs and tools in ``.mim``
(mmyolo's layout), installed non-editable into a scratch venv and used from a folder
outside the checkout, by config scope (``mmkd_yolo::``) and by the README's ``mim``
commands as written."""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest
import yaml

from .conftest import REPO
from .test_tools.test_readme_commands import SHORT, doc_commands, user_dir  # noqa: F401

#: Left out of the copy the wheel is built from (what a clean clone does not hold).
_NOT_SOURCE = {'.git', '.venv', 'work_dirs', 'data', 'build', 'dist', '.pytest_cache',
               '.hypothesis', '.ruff_cache'}
KD_S2N = 'kd-out_yolov5_s-to-n-v61_syncbn_fast_8xb16-300e_coco.py'


def test_model_index_lists_every_config():
    """mim and mmengine's scope read the metafiles that model-index.yml imports: every
    config of configs/distill/yolov5 and configs/yolov5 must be in one, by its path."""
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    listed = set()
    for meta in index['Import']:
        for model in yaml.safe_load(open(osp.join(REPO, meta)))['Models']:
            assert osp.isfile(osp.join(REPO, model['Config'])), model
            assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
            listed.add(model['Config'])
    configs = {osp.relpath(p, REPO) for folder in ('configs/distill/yolov5', 'configs/yolov5')
               for p in glob.glob(osp.join(REPO, folder, '*.py'))}
    assert configs and configs == listed, configs ^ listed


def test_editable_install_is_found_where_mmengine_looks(monkeypatch, tmp_path):
    """A PEP 660 editable install: mmengine's path (dist-info folder + name) does not exist;
    the scope then finds the package where Python imports it from, in ``_base_`` too."""
    import mmengine.utils
    from mmengine.config import Config

    import mmkd_yolo
    from mmkd_yolo import compat
    monkeypatch.setattr(mmengine.utils, 'get_installed_path',
                        lambda package: f'/nonexistent/site-packages/{package}')
    package = osp.dirname(mmkd_yolo.__file__)
    assert compat.installed_package_path('mmkd_yolo') == package
    (tmp_path / 'mine.py').write_text(
        "_base_ = 'mmkd_yolo::yolov5/yolov5_n-v61_fast_1xb16-40e_shapes-160.py'\n")
    cfg = Config.fromfile(str(tmp_path / 'mine.py'))
    assert cfg.model.type == 'YOLODetector' and cfg.model.neck.widen_factor == 0.25


def _copy_source(dst):
    def ignore(folder, names):
        if osp.abspath(folder) == REPO:
            return [n for n in names if n in _NOT_SOURCE or n.endswith('.egg-info')]
        return [n for n in names if n in ('__pycache__', '.mim') or n.endswith('.egg-info')]
    shutil.copytree(REPO, dst, ignore=ignore, symlinks=True)


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(scratch venv's python, its site-packages): the wheel of a copy of the checkout,
    installed non-editable; the stack's packages come from this test's environment
    through a .pth line (a .pth in a folder added that way is not run: this checkout's
    editable install stays out)."""
    tmp = tmp_path_factory.mktemp('package')
    _copy_source(tmp / 'src')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(tmp / 'dist'), str(tmp / 'src')],
                   check=True, capture_output=True, timeout=600)
    wheel, = glob.glob(str(tmp / 'dist' / 'mmkd_yolo-*.whl'))
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(tmp / 'venv')],
                   check=True, timeout=120)
    python = str(tmp / 'venv' / 'bin' / 'python')
    site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                           '["purelib"])'], check=True, capture_output=True,
                          text=True).stdout.strip()
    with open(osp.join(site, 'stack.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                    '--target', site, wheel], check=True, capture_output=True, timeout=300)
    return dict(python=python, site=site, wheel=wheel)


@pytest.mark.slow
def test_wheel_ships_configs_and_tools(installed):
    names = set(zipfile.ZipFile(installed['wheel']).namelist())
    for path in ('model-index.yml', f'configs/distill/yolov5/{KD_S2N}',
                 'configs/distill/yolov5/metafile.yml', 'configs/_base_/distill/yolov5_kd.py',
                 'configs/yolov5/yolov5_n-v61_fast_1xb16-40e_shapes-160.py', 'tools/train.py',
                 'tools/test.py', 'tools/dist_train.sh', 'tools/slurm_train.sh',
                 'tools/deployment/export_onnx.py', 'tools/misc/demo.py',
                 'tools/model_converters/kd_to_student.py'):
        assert f'mmkd_yolo/.mim/{path}' in names, path
    assert not [n for n in names if '__pycache__' in n or n.startswith('tests/')]


def _run(installed, code_or_args, cwd, timeout=900):
    args = code_or_args if isinstance(code_or_args, list) else ['-c', code_or_args]
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['MMKD_CACHE'] = str(cwd / 'cache')
    bin_dir = osp.dirname(installed['python'])
    env['PATH'] = bin_dir + os.pathsep + env.get('PATH', '')
    proc = subprocess.run([installed['python'], *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-5000:])
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_configs_load_by_scope_outside_the_checkout(installed, tmp_path):
    """``mmkd_yolo::`` as a config, in a user's ``_base_`` and as ``--t-cfg``, from the
    installed copy (not the checkout)."""
    (tmp_path / 'mine.py').write_text(
        f"_base_ = 'mmkd_yolo::distill/yolov5/{KD_S2N}'\ntrain_cfg = dict(max_epochs=7)\n")
    out = _run(installed, f'''
import os.path as osp, mmkd_yolo
from mmkd_yolo.apis import apply_teacher_args, load_config
assert mmkd_yolo.__file__.startswith({installed['site']!r}), mmkd_yolo.__file__
cfg = load_config('mmkd_yolo::distill/yolov5/{KD_S2N}')
assert cfg.model.type == 'YOLOv5Distill' and cfg.train_cfg.max_epochs == 300
mine = load_config('mine.py')
assert mine.train_cfg.max_epochs == 7 and mine.model.architecture.bbox_head.type == \\
    cfg.model.architecture.bbox_head.type
apply_teacher_args(mine, t_cfg='mmkd_yolo::yolov5/yolov5_s-v61_fast_1xb16-40e_shapes-160.py')
assert mine.model.teacher.bbox_head.head_module.num_classes == 8  # the shapes config's
print('scope ok', osp.dirname(mmkd_yolo.__file__))
''', tmp_path)
    assert f"scope ok {osp.join(installed['site'], 'mmkd_yolo')}" in out


@pytest.mark.slow
def test_readme_mim_commands_as_written(installed, user_dir):  # noqa: F811
    """The README's mim block, as written, in a user's folder with the package installed:
    train, test, export, and make demo's steps by mim run (on their tiny schedule,
    ``--fast``)."""
    commands = doc_commands('docs/en/get_started.md', '### From any folder: mim')
    assert [c.split()[:3] for c in commands][:3] == [
        ['mim', 'train', 'mmkd_yolo'], ['mim', 'test', 'mmkd_yolo'], ['mim', 'run', 'mmkd_yolo']]
    outputs = []
    for command in commands:
        args = command.split('#')[0].split()
        assert args[0] == 'mim', command
        if args[1] == 'train':
            args += ['--cfg-options'] + SHORT
        if args[1] == 'test':
            args += ['--cfg-options'] + SHORT[-2:]
        if args[1:4] == ['run', 'mmkd_yolo', 'demo']:
            args.append('--fast')
        args = ['-m', 'mim'] + [a.replace('epoch_300.pth', 'epoch_1.pth') for a in args[1:]]
        outputs.append(_run(installed, args, user_dir))
    site_tools = osp.join(installed['site'], 'mmkd_yolo', '.mim', 'tools')
    assert f'{site_tools}/train.py' in outputs[0]  # mim ran the installed tool
    assert 'Transferred' in outputs[0]
    assert 'coco/bbox_mAP' in outputs[1]
    assert osp.isfile(user_dir / 'student.onnx')
    assert osp.isfile(user_dir / 'work_dirs' / 'demo' / 'report.md')  # under the user's folder
