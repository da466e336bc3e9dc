"""Where drawn images go: a folder of their own, never over the images drawn on."""
from __future__ import annotations

import itertools
import os
import os.path as osp
from typing import List

from ..errors import DataError


def new_output_dir(path: str, exist_ok: bool = False) -> str:
    """A folder for this run's outputs, created: ``path`` if it does not exist or is
    empty, else the first free of ``path2``, ``path3``, ... (Ultralytics'
    ``runs/detect/predict2``), so that no earlier result or other file is written over.

    Args:
        path (str): The folder asked for.
        exist_ok (bool): Write into ``path`` even if it holds files (earlier outputs of
            the same names are replaced).

    Returns:
        str: The folder to write to.
    """
    path = osp.normpath(path)
    if exist_ok or not osp.exists(path) or (osp.isdir(path) and not os.listdir(path)):
        os.makedirs(path, exist_ok=True)
        return path
    for n in itertools.count(2):
        candidate = f'{path}{n}'
        try:
            os.makedirs(candidate)  # atomic: two runs never share a folder
            return candidate
        except FileExistsError:
            continue


def drawn_image_paths(images: List[str], out_dir: str) -> List[str]:
    """Where each image's drawing goes: ``out_dir`` / its path relative to the images'
    common folder (so ``a/1.jpg`` and ``b/1.jpg`` give ``a/1.jpg`` and ``b/1.jpg``).

    Args:
        images (list[str]): The input image files.
        out_dir (str): The output folder.

    Returns:
        list[str]: One output path per image.

    Raises:
        DataError: An output path is an input image (``--out`` is the images' folder
            and asked to be written into): nothing is written.
    """
    absolute = [osp.abspath(p) for p in images]
    root = osp.commonpath([osp.dirname(p) for p in absolute])
    outs = [osp.join(out_dir, osp.relpath(p, root)) for p in absolute]
    inputs = {osp.realpath(p): p for p in images}
    for out in outs:
        if osp.realpath(out) in inputs:
            raise DataError(
                f'--out {out_dir!r} would write a drawn image over the input image '
                f'{inputs[osp.realpath(out)]!r}: give another --out folder (by default a '
                'new one under work_dirs/infer).')
    return outs
