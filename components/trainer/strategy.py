"""The Trainer's tf.distribute strategy and the chores that depend on it.

``create_strategy`` turns ``distribution`` in the configuration into a
strategy:

* ``auto``: a TPU if one is configured (``tpu_address``) and reachable, or
  attached to this host; else MirroredStrategy over all local GPUs; else the
  default single-device strategy.
* ``one_device``: OneDeviceStrategy on the first GPU, or the CPU.
* ``mirrored``: MirroredStrategy over ``devices`` (all local GPUs, or the CPU,
  when empty).
* ``multi_worker``: MultiWorkerMirroredStrategy; the cluster and this task's
  place in it come from the ``TF_CONFIG`` environment variable.
* ``tpu``: TPUStrategy through a TPUClusterResolver at ``tpu_address``
  (``grpc://host:port``, a Cloud TPU name, or ``local`` on a TPU VM).

Misconfiguration raises :class:`StrategyError` at once, naming what was tried;
in particular an unreachable TPU is detected with a short TCP probe instead of
letting TPU system initialization wait on a peer that never answers.

The helpers below keep multi-worker training honest: every worker runs the
same code (saving needs all of them, for the collective reads), but only the
chief writes to the real output paths (``writable_dir``/``cleanup``); the
input is split between workers with an explicit auto-shard policy
(``shard_policy``/``apply_sharding``); the batch read per step is the global
one (``global_batch_size``); and ``backup_callback`` lets a restarted worker
resume from its last finished epoch.
"""

import json
import os
import shutil
import socket
import tempfile
import urllib.parse
import uuid
from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras
from absl import logging

from core import config as config_lib

AutoShardPolicy = tf.data.experimental.AutoShardPolicy

# How long a TPU worker's gRPC port may take to accept a TCP connection.
TPU_PROBE_TIMEOUT_S = 5.0
# Sharding by file is used only while the busiest worker reads at most this
# many percent more files than the least busy one.
MAX_FILE_IMBALANCE_PERCENT = 10
TF_CONFIG_ENV = 'TF_CONFIG'

# Real output path -> this worker's throw-away directory (non-chiefs only).
_TEMP_DIRS: Dict[str, str] = {}


class StrategyError(ValueError):
  """The configured distribution strategy cannot be created here."""


# --------------------------------------------------------------------------
# Creation.


def create_strategy(
    dist: config_lib.DistributionConfig) -> tf.distribute.Strategy:
  """The strategy ``dist`` asks for; raises StrategyError when impossible.

  Call before any other TensorFlow work in the process: multi-worker and TPU
  strategies configure the runtime, which is only possible before it starts.
  """
  name = dist.strategy
  if name == 'auto':
    return _auto(dist)
  if name == 'one_device':
    gpus = tf.config.list_logical_devices('GPU')
    device = gpus[0].name if gpus else '/cpu:0'
    logging.info('Strategy one_device on %s', device)
    return tf.distribute.OneDeviceStrategy(device)
  if name == 'mirrored':
    return _mirrored(dist.devices)
  if name == 'multi_worker':
    return _multi_worker()
  if name == 'tpu':
    return _tpu(dist.tpu_address)
  raise StrategyError(
      f'distribution.strategy: unknown strategy {name!r}; expected one of '
      f'{", ".join(config_lib.STRATEGIES)}')


def _auto(dist: config_lib.DistributionConfig) -> tf.distribute.Strategy:
  if dist.tpu_address:
    try:
      return _tpu(dist.tpu_address)
    except StrategyError as e:
      logging.warning('Strategy auto: configured TPU not usable, falling back '
                      'to local devices: %s', e)
  elif tf.config.list_physical_devices('TPU'):
    return _tpu('local')
  gpus = tf.config.list_logical_devices('GPU')
  if gpus:
    logging.info('Strategy auto: MirroredStrategy over %d GPU(s)', len(gpus))
    return tf.distribute.MirroredStrategy([d.name for d in gpus])
  logging.info('Strategy auto: no TPU or GPU, default single-device strategy')
  return tf.distribute.get_strategy()


def _mirrored(devices: Sequence[str]) -> tf.distribute.Strategy:
  if devices:
    known = {_canonical(d.name) for d in tf.config.list_logical_devices()}
    unknown = [d for d in devices if _canonical(d) not in known]
    if unknown:
      raise StrategyError(
          f'distribution.devices: {unknown} not found on this host; local '
          f'devices are {sorted(known)}')
  strategy = tf.distribute.MirroredStrategy(list(devices) or None)
  logging.info('Strategy mirrored over %s',
               strategy.extended.worker_devices)
  return strategy


def _canonical(device: str) -> str:
  """'/cpu:0', '/device:CPU:0' and '/job:localhost/.../CPU:0' compare equal."""
  spec = tf.DeviceSpec.from_string(device)
  return f'{spec.device_type.upper()}:{spec.device_index or 0}'


def _multi_worker() -> tf.distribute.Strategy:
  raw = os.environ.get(TF_CONFIG_ENV)
  if not raw:
    raise StrategyError(
        "distribution.strategy 'multi_worker' needs the TF_CONFIG environment "
        'variable (cluster and task); Kubeflow TFJob and Vertex AI set it for '
        'each replica. See docs/distributed.md.')
  try:
    tf_config = json.loads(raw)
  except json.JSONDecodeError as e:
    raise StrategyError(f'TF_CONFIG is not valid JSON: {e}') from None
  cluster = tf_config.get('cluster') or {}
  task = tf_config.get('task') or {}
  task_type, index = task.get('type'), task.get('index')
  if not cluster or task_type not in cluster:
    raise StrategyError(
        f'TF_CONFIG: task type {task_type!r} is not a job of the cluster '
        f'{sorted(cluster)}')
  if not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
    raise StrategyError(
        f'TF_CONFIG: task index {index!r} out of range for the '
        f'{len(cluster[task_type])} {task_type!r} task(s)')
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  strategy = tf.distribute.MultiWorkerMirroredStrategy(
      cluster_resolver=resolver)
  logging.info('Strategy multi_worker: task %s/%d of %s, %d replica(s)',
               task_type, index, {k: len(v) for k, v in cluster.items()},
               strategy.num_replicas_in_sync)
  return strategy


def _grpc_host_port(address: str) -> Optional[Tuple[str, int]]:
  if not address.startswith('grpc://'):
    return None
  parsed = urllib.parse.urlsplit(address)
  if not parsed.hostname or not parsed.port:
    raise StrategyError(
        f'distribution.tpu_address {address!r}: expected grpc://host:port')
  return parsed.hostname, parsed.port


def _probe(address: str, configured: str) -> None:
  """Fails fast when nothing listens at a grpc://host:port TPU address."""
  host_port = _grpc_host_port(address)
  if host_port is None:
    return
  try:
    with socket.create_connection(host_port, timeout=TPU_PROBE_TIMEOUT_S):
      pass
  except OSError as e:
    via = '' if address == configured else f' (resolved from {configured!r})'
    raise StrategyError(
        f'no TPU reachable at {address}{via}: {e}. Check '
        'distribution.tpu_address, or choose another distribution.strategy.'
    ) from None


def _tpu(address: Optional[str]) -> tf.distribute.Strategy:
  if not address:
    raise StrategyError(
        "distribution.strategy 'tpu' needs distribution.tpu_address: "
        "grpc://host:port, a Cloud TPU name, or 'local' on a TPU VM")
  if address == 'local' and not tf.config.list_physical_devices('TPU'):
    raise StrategyError(
        "no TPU at tpu_address 'local': this host has no TPU devices")
  _probe(address, address)  # Before the resolver: it does not check.
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
    master = resolver.master()
  except (ValueError, OSError, RuntimeError, KeyError) as e:
    # A Cloud TPU name is looked up through the GCE metadata server and the
    # Cloud TPU API; off Google Cloud that fails here.
    raise StrategyError(
        f'no TPU found at tpu_address {address!r}: {type(e).__name__}: {e}'
    ) from None
  if master != address:
    _probe(master, address)
  try:
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (tf.errors.OpError, ValueError, RuntimeError) as e:
    raise StrategyError(
        f'TPU at tpu_address {address!r} ({master or "local"}) could not be '
        f'initialized: {e}') from None
  strategy = tf.distribute.TPUStrategy(resolver)
  logging.info('Strategy tpu at %s: %d replica(s)', address,
               strategy.num_replicas_in_sync)
  return strategy


# --------------------------------------------------------------------------
# Multi-worker discipline.


def _task(strategy: tf.distribute.Strategy) -> Tuple[Optional[str], int, dict]:
  """(task type, task id, cluster) of a multi-worker strategy, else (None,..)."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return None, 0, {}
  resolver = strategy.cluster_resolver
  cluster = resolver.cluster_spec().as_dict() if resolver else {}
  if not cluster or resolver.task_type is None:
    return None, 0, {}  # MWMS without TF_CONFIG: local, single worker.
  return resolver.task_type, int(resolver.task_id or 0), cluster


def worker_count(strategy: tf.distribute.Strategy) -> int:
  """Training workers that each run an input pipeline (1 unless multi-worker)."""
  _, _, cluster = _task(strategy)
  return max(1, sum(len(cluster.get(job, ()))
                    for job in ('chief', 'master', 'worker')))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's outputs.

  Single-worker strategies (including TPU, driven by one host): always. In a
  multi-worker cluster: the ``chief`` task, or worker 0 when the cluster has no
  chief; ``master`` 0 too, the legacy name TFX's own executor accepts.
  """
  task_type, task_id, cluster = _task(strategy)
  return is_chief_task(task_type, task_id, cluster)


def is_chief_task(task_type: Optional[str], task_id: int, cluster) -> bool:
  """The rule ``is_chief`` applies to a task of ``cluster`` (a dict of jobs)."""
  if task_type is None:
    return True
  if task_type in ('chief', 'master'):
    return task_id == 0
  return task_type == 'worker' and task_id == 0 and not (
      'chief' in cluster or 'master' in cluster)


def writable_dir(path: str, strategy: tf.distribute.Strategy) -> str:
  """Where this worker writes what belongs at ``path``.

  The chief gets ``path`` itself. Other workers get a fresh local temporary
  directory: they must still write (saving a model reads synchronized
  variables, which needs every worker), but nothing of theirs may land in, or
  even create, the real output path the chief is filling.
  """
  if is_chief(strategy):
    return path
  if path not in _TEMP_DIRS:
    task_type, task_id, _ = _task(strategy)
    name = os.path.basename(os.path.normpath(path)) or 'output'
    _TEMP_DIRS[path] = tempfile.mkdtemp(
        prefix=f'{name}-{task_type}{task_id}-{uuid.uuid4().hex[:8]}-')
  return _TEMP_DIRS[path]


def cleanup(path: str, strategy: tf.distribute.Strategy) -> None:
  """Removes a non-chief's temporary directory for ``path``.

  ``path`` may be the real path or what ``writable_dir`` returned for it. On
  the chief this does nothing: only directories this module created are ever
  removed.
  """
  if is_chief(strategy):
    return
  temp = _TEMP_DIRS.pop(path, None)
  if temp is None:
    for real, candidate in list(_TEMP_DIRS.items()):
      if candidate == path:
        temp = _TEMP_DIRS.pop(real)
  if temp is not None:
    shutil.rmtree(temp, ignore_errors=True)


# --------------------------------------------------------------------------
# Input.


def shard_policy(num_files: int, num_workers: int, *,
                 in_memory: bool = False) -> AutoShardPolicy:
  """The auto-shard policy that splits the input among the workers.

  * One worker: OFF; there is nothing to split (replicas on one worker share
    its pipeline, each global batch is divided between them).
  * A split held in memory: DATA; every worker holds all its rows and keeps
    every n-th batch, as Keras does with arrays.
  * Streamed from enough files for every worker, evenly enough: FILE; each
    worker opens only its own files.
  * Streamed from fewer files than workers, or a lopsided split: DATA; every
    worker reads everything and keeps every n-th batch. FILE would leave a
    worker without data (TF raises) or with much more than the others.

  FILE needs the same file order on every worker and DATA the same element
  order: shuffle with a fixed seed (the Trainer passes ``model.seed``).
  """
  if num_files <= 0:
    raise StrategyError('no input files to shard: the split matched no file')
  if num_workers <= 1:
    return AutoShardPolicy.OFF
  if in_memory or num_files < num_workers:
    return AutoShardPolicy.DATA
  most = -(-num_files // num_workers)
  least = num_files // num_workers
  if most * 100 <= least * (100 + MAX_FILE_IMBALANCE_PERCENT):
    return AutoShardPolicy.FILE
  return AutoShardPolicy.DATA


def apply_sharding(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy,
                   num_files: int, *,
                   in_memory: bool = False) -> tf.data.Dataset:
  """``dataset`` with the auto-shard policy for its input and this cluster.

  ``num_files`` is the count of files the split was read from;
  ``in_memory`` says the dataset serves rows already in memory.
  """
  workers = worker_count(strategy)
  policy = shard_policy(num_files, workers, in_memory=in_memory)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = policy
  logging.info('Auto-shard policy %s: %d file(s)%s, %d worker(s)', policy.name,
               num_files, ' in memory' if in_memory else '', workers)
  return dataset.with_options(options)


def global_batch_size(per_replica: int,
                      strategy: tf.distribute.Strategy) -> int:
  """The batch the input pipeline must produce: tf.distribute splits it."""
  if per_replica <= 0:
    raise StrategyError(f'batch size per replica must be > 0, got {per_replica}')
  return per_replica * strategy.num_replicas_in_sync


# --------------------------------------------------------------------------
# Fault tolerance.


class _BackupAndRestore(keras.callbacks.BackupAndRestore):
  """BackupAndRestore that also accepts OneDeviceStrategy.

  tf_keras 2.16 refuses OneDeviceStrategy only because it is missing from an
  allow-list; its checkpointing is the single-worker case, which works.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._supported_strategies = self._supported_strategies + (
        tf.distribute.OneDeviceStrategy,)


def backup_callback(backup_dir: str, strategy: tf.distribute.Strategy
                    ) -> keras.callbacks.BackupAndRestore:
  """Backs up after every epoch; a restarted run resumes after the last one.

  Every worker must get this callback with the same ``backup_dir`` (on shared
  storage in a cluster): the chief writes ``backup_dir/chief``, other workers
  a temporary copy, and all restore from the chief's. The backup is deleted
  when training finishes, so a finished run starts afresh.
  """
  del strategy  # Same callback for every strategy; kept for the API's sake.
  return _BackupAndRestore(backup_dir, save_freq='epoch',
                           delete_checkpoint=True)
