"""The solver's log: glog's line format on stderr, flushed line by line, so Caffe users (and parse_log.py) read it.

    I1126 09:20:00.123456 12345 solver.py:201] Iteration 20 (4.1 iter/s, 4.87s/20 iters), loss = 0.123

The logger is "fcn.solver". It gets its own stderr handler once (as glog always prints); reconfigure it with the
logging module as usual (e.g. logging.getLogger("fcn.solver").setLevel(logging.WARNING) silences training).
"""
import logging
import os
import sys
import time

LOGGER_NAME = "fcn.solver"
_LEVELS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E", logging.CRITICAL: "F"}


class GlogFormatter(logging.Formatter):
    def format(self, record):
        t = time.localtime(record.created)
        micro = int((record.created - int(record.created)) * 1e6)
        prefix = (f"{_LEVELS.get(record.levelno, 'I')}{time.strftime('%m%d %H:%M:%S', t)}.{micro:06d} "
                  f"{os.getpid()} {record.filename}:{record.lineno}] ")
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return prefix + text


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (pytest and notebooks swap it)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)              # StreamHandler flushes after every record


def get_logger():
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(GlogFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def g(value):
    """A number as C++'s default ostream prints it (6 significant digits): 1e-10, 0.0001, 2.30259."""
    return f"{float(value):g}"
