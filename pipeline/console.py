"""What a local run prints: component progress and epochs on the terminal,
everything else (TFX, Beam and TensorFlow logs) in the run's log file.

TFX logs a protobuf dump of every node, Beam and TensorFlow add their own
lines, and Keras prints its epochs to stdout: thousands of lines around the
few that matter. ``captured`` sends all of it to a log file, at the level of
file descriptors as well as of Python's logging, so that C++ logs and Beam's
worker processes are caught too, and hands back a stream on the original
terminal for the progress lines. ``--verbose`` skips the redirection and
streams everything as before.
"""

import contextlib
import logging
import os
import sys
import time
import warnings
from typing import Dict, Iterator, Optional, TextIO

# The Trainer logs one line per epoch on this logger (named in
# components/trainer/fit.py too, which must not import pipeline/).
EPOCH_LOGGER = 'generalize.epochs'


class _Progress(logging.Handler):
  """Prints each component as it starts ("  > trainer ...") and finishes
  ("  < trainer done in 41.2 s"), and the Trainer's epochs in between.

  LocalDagRunner logs "Component <id> is running." and "... is finished."
  on absl's logger. Whole lines only, so that a reader of the stream (a CI
  log, a test waiting for a component) sees each line when it happens.
  """

  def __init__(self, stream: TextIO):
    super().__init__(logging.INFO)
    self._stream = stream
    self._started: Dict[str, float] = {}

  def _write(self, line: str) -> None:
    print(line, file=self._stream, flush=True)

  def emit(self, record):
    message = record.getMessage()
    if record.name == EPOCH_LOGGER:
      self._write(f'      {message}')
      return
    if not message.startswith('Component '):
      return
    node = message.split()[1]
    if message.endswith('is running.'):
      self._started[node] = time.monotonic()
      self._write(f'  > {node} ...')
    elif message.endswith('is finished.') and node in self._started:
      took = time.monotonic() - self._started.pop(node)
      self._write(f'  < {node} done in {took:.1f} s')


@contextlib.contextmanager
def progress(stream: TextIO) -> Iterator[None]:
  """Component and epoch progress onto ``stream`` while the block runs."""
  handler = _Progress(stream)
  loggers = [logging.getLogger('absl'), logging.getLogger(EPOCH_LOGGER)]
  levels = [logger.level for logger in loggers]
  for logger in loggers:
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
      logger.setLevel(logging.INFO)
  try:
    yield
  finally:
    for logger, level in zip(loggers, levels):
      logger.removeHandler(handler)
      logger.setLevel(level)


@contextlib.contextmanager
def captured(log_path: Optional[str]) -> Iterator[TextIO]:
  """Everything written to stdout, stderr or Python's logging goes to
  ``log_path``; yields a stream on the original stderr for progress. With
  no ``log_path`` (``--verbose``) nothing is redirected."""
  if log_path is None:
    yield sys.stderr
    return
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  for stream in (sys.stdout, sys.stderr):
    stream.flush()
  terminal = os.fdopen(os.dup(2), 'w', buffering=1)
  saved = {fd: os.dup(fd) for fd in (1, 2)}
  log_file = open(log_path, 'a', buffering=1, encoding='utf-8')
  root = logging.getLogger()
  absl_logger = logging.getLogger('absl')
  saved_handlers = {logger: list(logger.handlers)
                    for logger in (root, absl_logger)}
  saved_root_level = root.level
  file_handler = logging.FileHandler(log_path, encoding='utf-8')
  file_handler.setFormatter(logging.Formatter(
      '%(asctime)s %(levelname).1s %(name)s: %(message)s'))
  try:
    for fd in (1, 2):
      os.dup2(log_file.fileno(), fd)
    # Python-level streams that are not the process's fds (a test's capture,
    # an IDE's console) would bypass the fd redirection.
    with contextlib.redirect_stdout(log_file), \
        contextlib.redirect_stderr(log_file), warnings.catch_warnings():
      for logger, handlers in saved_handlers.items():
        for handler in handlers:
          logger.removeHandler(handler)
      root.addHandler(file_handler)
      root.setLevel(logging.INFO)
      logging.captureWarnings(True)
      yield terminal
  finally:
    logging.captureWarnings(False)
    root.removeHandler(file_handler)
    file_handler.close()
    root.setLevel(saved_root_level)
    for logger, handlers in saved_handlers.items():
      for handler in handlers:
        logger.addHandler(handler)
    for stream in (sys.stdout, sys.stderr):
      stream.flush()
    for fd, copy in saved.items():
      os.dup2(copy, fd)
      os.close(copy)
    log_file.close()
    terminal.close()
