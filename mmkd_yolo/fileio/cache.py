"""The project's cache folder (built mmcv wheels, converted checkpoints, COCO json).

Same default as ``tools/misc/install_env.sh``: ``$MMKD_CACHE``, else
``$XDG_CACHE_HOME/mmkd_yolo``, else ``~/.cache/mmkd_yolo``.
"""
import hashlib
import os
import os.path as osp


def cache_dir(*parts: str) -> str:
    """A path under the cache folder (not created)."""
    root = os.environ.get('MMKD_CACHE') or osp.join(
        os.environ.get('XDG_CACHE_HOME', osp.expanduser('~/.cache')), 'mmkd_yolo')
    return osp.join(root, *parts)


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()
