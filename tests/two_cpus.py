"""Two logical CPU devices for tests of MirroredStrategy on one machine.

Logical devices can only be set before TensorFlow initialises, so such a
test runs in a child pytest process: the module calls :func:`strategy` at
import (a strategy only in the child, marked by an environment variable),
marks the child's tests with :func:`only_in_child`, and a parent test calls
:func:`run_children`.
"""

import os
import subprocess
import sys
from typing import Optional

import pytest
import tensorflow as tf


def strategy(variable: str) -> Optional[tf.distribute.Strategy]:
  """A MirroredStrategy over two logical CPUs when ``variable`` is set (the
  child), else None. One per process: a second one reuses the first one's
  collective instance keys for tensors of other shapes."""
  if not os.environ.get(variable):
    return None
  tf.config.set_logical_device_configuration(
      tf.config.list_physical_devices('CPU')[0],
      [tf.config.LogicalDeviceConfiguration()] * 2)
  return tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])


def only_in_child(variable: str):
  return pytest.mark.skipif(not os.environ.get(variable),
                            reason='runs in the child')


def run_children(test_file: str, variable: str, expected: str) -> None:
  """Runs ``test_file``'s ``in_child`` tests in a child with ``variable``
  set; fails unless they all pass (``expected``: pytest's count line)."""
  done = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
       test_file, '-k', 'in_child'],
      env=dict(os.environ, **{variable: '1'}), capture_output=True, text=True,
      timeout=900, check=False)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  assert expected in done.stdout, done.stdout[-2000:]
