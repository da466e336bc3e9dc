"""The repository's scripts (tools/, benchmarks/) as modules: they are not a package."""
import importlib.util
from types import ModuleType


def load_script(path: str, name: str) -> ModuleType:
    """Execute the script at ``path`` as a module called ``name`` and return it."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
