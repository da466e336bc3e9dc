"""mmkd_yolo: YOLOv5 knowledge distillation on the OpenMMLab 2.x stack."""
import os
import os.path as osp
import re
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
#: What ``mim`` and mmengine's ``mmkd_yolo::`` scope read from ``mmkd_yolo/.mim``.
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def get_version() -> str:
    with open(osp.join(HERE, 'mmkd_yolo', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(name: str, skip: tuple = ()) -> list:
    """Requirement lines of ``requirements/<name>``, without comments or ``skip``ped names."""
    reqs = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line and not line.startswith(skip):
                reqs.append(line)
    return reqs


def link_mim_files() -> None:
    """``mmkd_yolo/.mim/{configs,tools,model-index.yml}``: links to the checkout's own, for
    an install that runs from the checkout (``make install``, ``pip install -e``): edits
    show at once. Links only: the checkout never gets copies that could go stale."""
    mim_path = osp.join(HERE, 'mmkd_yolo', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        dst = osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        os.symlink(osp.relpath(osp.join(HERE, name), mim_path), dst)


class BuildPyWithMim(build_py):
    """setuptools' ``build_py``, plus copies of ``configs/``, ``tools/`` and
    ``model-index.yml`` in the built package's ``.mim`` (as mmyolo and mmrazor ship
    theirs), so that ``mmkd_yolo::distill/yolov5/...`` configs, ``mim train mmkd_yolo``
    and the tools work from any folder after ``pip install .``. The copies go to the build
    folder, emptied first (a config deleted here is gone from the next wheel)."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        mim_path = osp.join(self.build_lib, 'mmkd_yolo', '.mim')
        if osp.isdir(mim_path):
            shutil.rmtree(mim_path)
        os.makedirs(mim_path)
        for name in MIM_FILES:
            src = osp.join(HERE, name)
            if osp.isdir(src):
                shutil.copytree(src, osp.join(mim_path, name), symlinks=False,
                                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            elif osp.isfile(src):
                shutil.copyfile(src, osp.join(mim_path, name))


if {'develop', 'editable_wheel', 'egg_info'} & set(sys.argv):
    link_mim_files()
setup(
    name='mmkd_yolo',
    version=get_version(),
    description='YOLOv5 teacher-student knowledge distillation for OpenMMLab '
    '(mmengine, mmyolo, mmrazor)',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    cmdclass={'build_py': BuildPyWithMim},
    python_requires='>=3.10',
    # torch is not pinned here so that an installed (CUDA) torch is kept;
    # tools/misc/install_env.sh installs torch==2.13.0 when none is present.
    # mmcv is left to install_env.sh: pip cannot build 2.0.x against torch >= 2.1.
    install_requires=['torch>=2.6'] + parse_requirements('runtime.txt')
    + parse_requirements('mminstall.txt', skip=('mmcv', )),
    extras_require={'tests': parse_requirements('tests.txt')},
    license='Apache License 2.0',
    zip_safe=False,
)
