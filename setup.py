"""mmkd_yolo: YOLOv5 knowledge distillation on the OpenMMLab 2.x stack."""
import os
import os.path as osp
import re
import shutil
import sys

from setuptools import find_packages, setup

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


def add_mim_extension() -> None:
    """Put ``configs/``, ``tools/`` and ``model-index.yml`` into ``mmkd_yolo/.mim``, as
    mmyolo's and mmrazor's setup.py do: symbolic links for an editable install (edits show
    at once), copies when a wheel or sdist is built (``pip install .``), so that
    ``mmkd_yolo::distill/yolov5/...`` configs, ``mim train mmkd_yolo`` and the tools
    work from any directory once installed."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif 'bdist_wheel' in sys.argv or 'sdist' in sys.argv:
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'mmkd_yolo', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


add_mim_extension()
setup(
    name='mmkd_yolo',
    version=get_version(),
    description='YOLOv5 teacher-student knowledge distillation for OpenMMLab '
    '(mmengine, mmyolo, mmrazor)',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    package_data={'mmkd_yolo': ['.mim/model-index.yml', '.mim/configs/**/*.py',
                                '.mim/configs/**/*.yml', '.mim/tools/**/*.py',
                                '.mim/tools/**/*.sh']},
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
