"""What an MMLogger logged inside a block (mmengine's loggers do not propagate to the
root logger, so pytest's caplog does not see ``print_log(..., 'current')``)."""
import contextlib
import logging
from typing import Iterator, List

from mmengine.logging import MMLogger


@contextlib.contextmanager
def logged(name: str, log_level: str = 'INFO') -> Iterator[List[logging.LogRecord]]:
    """Make ``name`` the current MMLogger and collect its records inside the block.

    Args:
        name (str): The logger's instance name.
        log_level (str): Its level. Defaults to 'INFO'.

    Yields:
        list[logging.LogRecord]: Filled as records are logged.
    """
    logger = MMLogger.get_instance(name, log_level=log_level)
    records: List[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
