"""Publishing a SavedModel into a TF Serving base directory, crash-safely.

The model is copied into a hidden temporary directory beside the destination
and renamed into a new numbered version. ``rename`` is atomic on a POSIX
filesystem, and TF Serving ignores non-numeric directories, so a server never
sees a partial model, and a crash leaves at most a ``.incoming-*`` directory
that the next push removes. Two pushers racing for the same version number
both succeed: the loser's rename fails and it takes the next number.

``publish`` is the one entry point: whether the model is already served,
its smoke test and its publication happen under one lock on the serving
directory (``flock``), so two pushers of the same model publish it once.

Object stores (``gs://``) have neither rename nor locks. There, each file is
copied into the new version with ``saved_model.pb``, the file TF Serving
waits for, last (as the stock Pusher does), so a server never loads a
partial version; version numbers are claimed with a marker object each
(``.claims/<version>.<random id>``; after a short wait for rivals' claims
the lowest id of a number wins, the others take the next), so two pushes in the same second get two numbers; the
already-served check there is a listing, not atomic with the push.
"""

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
import time
import uuid
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from core import tasks

INCOMING_PREFIX = '.incoming-'
# Written into each pushed version (TF Serving ignores assets.extra/ files):
# the URI of the model it came from, so that a model is never pushed twice.
SOURCE_MARKER = os.path.join('assets.extra', 'source_model_uri.txt')
STALE_INCOMING_SECONDS = 3600
LOCK_FILE = '.push.lock'
CLAIMS_DIR = '.claims'
CLAIM_SETTLE_SECONDS = 0.5


class PushError(RuntimeError):
  """The candidate model failed its pre-push check; nothing was pushed."""


def _remote(base_dir: str) -> bool:
  return '://' in base_dir


def _join(base_dir: str, *names: str) -> str:
  return '/'.join([base_dir.rstrip('/'), *names]) if _remote(base_dir) else (
      os.path.join(base_dir, *names))


def versions(base_dir: str) -> list:
  if not tf.io.gfile.isdir(base_dir):
    return []
  return sorted(int(n.rstrip('/')) for n in tf.io.gfile.listdir(base_dir)
                if n.rstrip('/').isdigit())


def find_pushed(base_dir: str, source_uri: str) -> Optional[str]:
  """The version directory already holding the model from ``source_uri``."""
  for version in versions(base_dir):
    marker = _join(base_dir, str(version), SOURCE_MARKER)
    if tf.io.gfile.exists(marker):
      with tf.io.gfile.GFile(marker) as f:
        if f.read() == source_uri:
          return _join(base_dir, str(version))
  return None


@contextlib.contextmanager
def _serving_lock(base_dir: str):
  """Exclusive use of a local serving directory (a no-op on object stores,
  which have no locks; see the module docstring)."""
  if _remote(base_dir):
    yield
    return
  os.makedirs(base_dir, exist_ok=True)
  with open(os.path.join(base_dir, LOCK_FILE), 'a', encoding='utf-8') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def publish(model_dir: str, base_dir: str, source_uri: str,
            verify: Callable[[], None] = lambda: None) -> Tuple[str, bool]:
  """Publishes the model from ``source_uri`` unless it is already served:
  (version directory, whether this call published it). ``verify`` (the
  smoke test) runs first and raises to stop the push; the lookup, the test
  and the publication are one step for pushers of one local directory."""
  with _serving_lock(base_dir):
    existing = find_pushed(base_dir, source_uri)
    if existing:
      return existing, False
    verify()
    return atomic_push(model_dir, base_dir, source_uri=source_uri), True


def verify_serving(model_dir: str, serialized_examples: Sequence[bytes],
                   signature: str = 'serving_default') -> Dict[str, np.ndarray]:
  """Loads the SavedModel and calls its serving signature on raw examples.

  The output contract is the model's task's (``core.tasks``, read from the
  task record the Trainer writes into the model): a binary model answers one
  probability per example, a multiclass one a probability per class that sums
  to 1 plus the class names it was trained on, a regression one a finite
  prediction. Returns the outputs by name; raises PushError when the model
  records no task, cannot serve the examples (missing signature, an
  exception) or breaks its task's contract.
  """
  if not serialized_examples:
    raise PushError('no examples to smoke-test the serving signature with')
  if not tf.io.gfile.exists(model_dir):
    raise PushError(f'{model_dir}: no model there')
  try:
    task, _, info = tasks.read_model_task(model_dir)
  except FileNotFoundError as e:
    raise PushError(f'{model_dir}: refused: {e}; without it the serving '
                    "outputs' contract is unknown") from e
  except (ValueError, KeyError, TypeError) as e:  # Bad JSON, unknown task.
    raise PushError(f'{model_dir}: unreadable {tasks.TASK_JSON}: {e}') from e
  try:
    loaded = tf.saved_model.load(model_dir)
    fn = loaded.signatures[signature]
    outputs = fn(examples=tf.constant(list(serialized_examples)))
    values = {name: value.numpy() for name, value in outputs.items()}
  except Exception as e:  # Anything at all means the model cannot serve.
    raise PushError(f'{model_dir}: serving signature {signature!r} failed on '
                    f'{len(serialized_examples)} raw examples: {e}') from e
  try:
    task.check_serving(values, len(serialized_examples), info)
  except tasks.LabelError as e:
    raise PushError(f'{model_dir}: the {task.name} serving contract is '
                    f'broken: {e}') from e
  return values


def _remove_stale_incoming(base_dir: str) -> None:
  now = time.time()
  for name in os.listdir(base_dir):
    if not name.startswith(INCOMING_PREFIX):
      continue
    path = os.path.join(base_dir, name)
    try:
      age = now - os.path.getmtime(path)
    except FileNotFoundError:
      continue  # A concurrent pusher just renamed it into a version.
    if age > STALE_INCOMING_SECONDS:
      shutil.rmtree(path, ignore_errors=True)


def _claim_version(base_dir: str) -> int:
  """A version number no other push takes: the lowest claim of a number
  wins it, the others try the next one."""
  claims_dir = _join(base_dir, CLAIMS_DIR)
  tf.io.gfile.makedirs(claims_dir)
  me = uuid.uuid4().hex
  while True:
    claims = [n.rstrip('/') for n in tf.io.gfile.listdir(claims_dir)]
    claimed = [int(n.split('.')[0]) for n in claims if n.split('.')[0].isdigit()]
    version = max([int(time.time())] + [v + 1 for v in versions(base_dir)]
                  + [v + 1 for v in claimed])
    mine = f'{version}.{me}'
    with tf.io.gfile.GFile(_join(claims_dir, mine), 'w') as f:
      f.write(me)
    # A rival that chose the same number before this claim existed writes
    # its own within milliseconds: after the wait, every claim of the
    # number is listed, and all claimants agree on the lowest.
    time.sleep(CLAIM_SETTLE_SECONDS)
    rivals = sorted(n.rstrip('/') for n in tf.io.gfile.listdir(claims_dir)
                    if n.startswith(f'{version}.'))
    if rivals[0] == mine:
      return version


def _push_remote(model_dir: str, base_dir: str, source_uri: str) -> str:
  """Object stores have no atomic rename: everything else first, then the
  source marker, then ``saved_model.pb``, the file TF Serving waits for."""
  target = _join(base_dir, str(_claim_version(base_dir)))
  for root, _, files in tf.io.gfile.walk(model_dir):
    rel = os.path.relpath(root, model_dir)
    dest = target if rel == '.' else f'{target}/{rel}'
    tf.io.gfile.makedirs(dest)
    for name in files:
      if rel == '.' and name == 'saved_model.pb':
        continue
      tf.io.gfile.copy(os.path.join(root, name), f'{dest}/{name}', overwrite=True)
  tf.io.gfile.makedirs(f'{target}/assets.extra')
  with tf.io.gfile.GFile(f'{target}/{SOURCE_MARKER}', 'w') as f:
    f.write(source_uri)
  tf.io.gfile.copy(os.path.join(model_dir, 'saved_model.pb'),
                   f'{target}/saved_model.pb', overwrite=True)
  return target


def atomic_push(model_dir: str, base_dir: str,
                source_uri: str = '') -> str:
  """Publishes ``model_dir`` as a new version below ``base_dir``; returns it.

  ``source_uri`` (the model artifact's URI) is recorded inside the version.
  """
  if _remote(base_dir):
    return _push_remote(model_dir, base_dir, source_uri)
  os.makedirs(base_dir, exist_ok=True)
  _remove_stale_incoming(base_dir)
  incoming = tempfile.mkdtemp(prefix=INCOMING_PREFIX, dir=base_dir)
  try:
    shutil.copytree(model_dir, incoming, dirs_exist_ok=True)
    os.makedirs(os.path.join(incoming, 'assets.extra'), exist_ok=True)
    with open(os.path.join(incoming, SOURCE_MARKER), 'w', encoding='utf-8') as f:
      f.write(source_uri)
    while True:
      existing = versions(base_dir)
      version = max([int(time.time())] + [v + 1 for v in existing])
      target = os.path.join(base_dir, str(version))
      try:
        os.rename(incoming, target)
        return target
      except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
          raise
        # Another pusher took this number first: take the next one.
  finally:
    if os.path.exists(incoming):
      shutil.rmtree(incoming, ignore_errors=True)
