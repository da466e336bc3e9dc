"""mmkd_yolo: YOLOv5 knowledge distillation on the OpenMMLab 2.x stack."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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


setup(
    name='mmkd_yolo',
    version=get_version(),
    description='YOLOv5 teacher-student knowledge distillation for OpenMMLab '
    '(mmengine, mmyolo, mmrazor)',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
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
