"""Unit tests for components/trainer/strategy.py.

Everything here runs in the test process on its one CPU device. What needs
several devices or processes (two replicas, two workers, a real preemption)
is in test_distributed.py.
"""

import json
import os
import socket
import time

import pytest
import tensorflow as tf
import tf_keras as keras
from tensorflow.python.data.experimental.ops import distribute as tf_distribute

from components.trainer import strategy as strategy_lib
from core import config as config_lib

Policy = tf.data.experimental.AutoShardPolicy


def _dist(**kwargs) -> config_lib.DistributionConfig:
  return config_lib.DistributionConfig(**kwargs)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


# --------------------------------------------------------------------------
# create_strategy


def test_auto_without_accelerators_is_default_strategy():
  strategy = strategy_lib.create_strategy(_dist(strategy='auto'))
  assert strategy is tf.distribute.get_strategy()
  assert strategy.num_replicas_in_sync == 1


def test_one_device_and_mirrored_on_cpu():
  one = strategy_lib.create_strategy(_dist(strategy='one_device'))
  assert isinstance(one, tf.distribute.OneDeviceStrategy)
  mirrored = strategy_lib.create_strategy(
      _dist(strategy='mirrored', devices=('/cpu:0',)))
  assert isinstance(mirrored, tf.distribute.MirroredStrategy)
  assert mirrored.num_replicas_in_sync == 1


def test_mirrored_rejects_unknown_device():
  with pytest.raises(strategy_lib.StrategyError, match=r'/gpu:7'):
    strategy_lib.create_strategy(
        _dist(strategy='mirrored', devices=('/cpu:0', '/gpu:7')))


def test_unknown_strategy_name():
  with pytest.raises(strategy_lib.StrategyError, match='parameter_server'):
    strategy_lib.create_strategy(_dist(strategy='parameter_server'))


@pytest.mark.parametrize('tf_config, message', [
    (None, 'needs the TF_CONFIG'),
    ('{not json', 'not valid JSON'),
    (json.dumps({'cluster': {'worker': ['127.0.0.1:1']},
                 'task': {'type': 'ps', 'index': 0}}), "'ps' is not a job"),
    (json.dumps({'cluster': {'worker': ['127.0.0.1:1']},
                 'task': {'type': 'worker', 'index': 3}}), 'index 3 out of'),
])
def test_multi_worker_misconfigured_tf_config(monkeypatch, tf_config, message):
  if tf_config is None:
    monkeypatch.delenv('TF_CONFIG', raising=False)
  else:
    monkeypatch.setenv('TF_CONFIG', tf_config)
  with pytest.raises(strategy_lib.StrategyError, match=message):
    strategy_lib.create_strategy(_dist(strategy='multi_worker'))


def test_tpu_needs_an_address():
  with pytest.raises(strategy_lib.StrategyError, match='tpu_address'):
    strategy_lib.create_strategy(_dist(strategy='tpu'))


def test_tpu_unreachable_fails_fast_naming_the_address():
  address = f'grpc://127.0.0.1:{_free_port()}'  # Nothing listens there.
  start = time.monotonic()
  with pytest.raises(strategy_lib.StrategyError) as raised:
    strategy_lib.create_strategy(_dist(strategy='tpu', tpu_address=address))
  elapsed = time.monotonic() - start
  assert address in str(raised.value)
  assert 'no TPU reachable' in str(raised.value)
  assert elapsed < strategy_lib.TPU_PROBE_TIMEOUT_S + 1


@pytest.mark.parametrize('address', ['local', 'no-such-tpu-node'])
def test_tpu_missing_locally_or_by_name(address):
  with pytest.raises(strategy_lib.StrategyError, match=address):
    strategy_lib.create_strategy(_dist(strategy='tpu', tpu_address=address))


def test_auto_falls_back_when_configured_tpu_is_unreachable():
  address = f'grpc://127.0.0.1:{_free_port()}'
  strategy = strategy_lib.create_strategy(
      _dist(strategy='auto', tpu_address=address))
  assert strategy is tf.distribute.get_strategy()


# --------------------------------------------------------------------------
# Chief and output directories


@pytest.mark.parametrize('task_type, task_id, cluster, chief', [
    (None, 0, {}, True),
    ('chief', 0, {'chief': ['a'], 'worker': ['b']}, True),
    ('worker', 0, {'chief': ['a'], 'worker': ['b']}, False),
    ('worker', 0, {'worker': ['a', 'b']}, True),
    ('worker', 1, {'worker': ['a', 'b']}, False),
    ('master', 0, {'master': ['a'], 'worker': ['b']}, True),
    ('worker', 0, {'master': ['a'], 'worker': ['b']}, False),
    ('evaluator', 0, {'worker': ['a'], 'evaluator': ['b']}, False),
])
def test_is_chief_task(task_type, task_id, cluster, chief):
  assert strategy_lib.is_chief_task(task_type, task_id, cluster) is chief


def test_single_worker_strategies_are_chief_and_write_real_paths(tmp_path):
  real = str(tmp_path / 'serving')
  for strategy in (tf.distribute.get_strategy(),
                   tf.distribute.OneDeviceStrategy('/cpu:0'),
                   tf.distribute.MirroredStrategy(['/cpu:0'])):
    assert strategy_lib.is_chief(strategy)
    assert strategy_lib.worker_count(strategy) == 1
    assert strategy_lib.writable_dir(real, strategy) == real
    os.makedirs(real, exist_ok=True)
    strategy_lib.cleanup(real, strategy)
    assert os.path.isdir(real), 'cleanup must never touch the chief\'s output'


def test_global_batch_size():
  assert strategy_lib.global_batch_size(
      32, tf.distribute.MirroredStrategy(['/cpu:0'])) == 32
  assert strategy_lib.global_batch_size(32, tf.distribute.get_strategy()) == 32
  with pytest.raises(strategy_lib.StrategyError):
    strategy_lib.global_batch_size(0, tf.distribute.get_strategy())


# --------------------------------------------------------------------------
# Sharding


@pytest.mark.parametrize('num_files, num_workers, policy', [
    (1, 1, Policy.OFF), (8, 1, Policy.OFF),
    (1, 2, Policy.DATA),             # FILE would starve one worker.
    (2, 2, Policy.FILE), (4, 2, Policy.FILE),
    (3, 2, Policy.DATA),             # 2 files vs 1: twice the data.
    (5, 2, Policy.DATA),             # 3 vs 2: 50% more.
    (21, 2, Policy.FILE),            # 11 vs 10: within 10%.
    (19, 2, Policy.DATA),            # 10 vs 9: 11% more.
])
def test_shard_policy(num_files, num_workers, policy):
  assert strategy_lib.shard_policy(num_files, num_workers) == policy


@pytest.mark.parametrize('num_files, num_workers, policy', [
    (4, 1, Policy.OFF),
    (4, 2, Policy.DATA),  # Every worker holds the rows: share out batches.
    (1, 2, Policy.DATA),
])
def test_shard_policy_in_memory(num_files, num_workers, policy):
  assert strategy_lib.shard_policy(num_files, num_workers,
                                   in_memory=True) == policy


def test_shard_policy_without_files():
  with pytest.raises(strategy_lib.StrategyError, match='no input files'):
    strategy_lib.shard_policy(0, 2)


def _write_shards(directory, num_files, per_file):
  """TFRecord shards of serialized ints, like a TFX split's gzipped files."""
  values = iter(range(num_files * per_file))
  for i in range(num_files):
    path = os.path.join(directory, f'data_tfrecord-{i:05d}-of-{num_files:05d}.gz')
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
      for _ in range(per_file):
        writer.write(str(next(values)).encode())
  return os.path.join(directory, '*'), num_files * per_file


@pytest.mark.parametrize('num_files', [1, 2, 3, 4])
def test_chosen_policy_gives_every_worker_a_disjoint_nonempty_share(
    tmp_path, num_files):
  """Applies TF's auto-shard rewrite, as each of 2 workers would, with the
  policy apply_sharding chose, on a tfxio-shaped pipeline (shuffled file list
  with a seed, interleaved readers, shuffle, batch)."""
  pattern, total = _write_shards(str(tmp_path), num_files, per_file=24)
  workers = 2

  def dataset():
    files = tf.data.Dataset.list_files(pattern, shuffle=True, seed=7)
    ds = files.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type='GZIP'))
    ds = ds.shuffle(64, seed=7).batch(4)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        strategy_lib.shard_policy(num_files, workers))
    return ds.with_options(options)

  shares = []
  for index in range(workers):
    sharded = tf_distribute._AutoShardDataset(dataset(), workers, index,
                                              num_replicas=workers)
    shares.append([int(v) for batch in sharded.as_numpy_iterator()
                   for v in batch])
  assert all(shares), f'a worker got no data: {[len(s) for s in shares]}'
  seen = shares[0] + shares[1]
  assert len(seen) == len(set(seen)), 'workers overlap'
  assert sorted(seen) == list(range(total)), 'examples lost'


def test_apply_sharding_sets_the_option():
  ds = tf.data.Dataset.range(4)
  for in_memory in (False, True):
    out = strategy_lib.apply_sharding(ds, tf.distribute.get_strategy(), 3,
                                      in_memory=in_memory)
    assert (out.options().experimental_distribute.auto_shard_policy
            == Policy.OFF)  # One worker: nothing to split.


# --------------------------------------------------------------------------
# Backup and restore


class _Preempt(keras.callbacks.Callback):
  """Kills training right after the given epoch's backup was written."""

  def __init__(self, after_epoch):
    super().__init__()
    self.after_epoch = after_epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.after_epoch:
      raise RuntimeError('preempted')


class _Epochs(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.seen = []

  def on_epoch_begin(self, epoch, logs=None):
    self.seen.append(epoch)


@pytest.mark.parametrize('make_strategy', [
    tf.distribute.get_strategy,
    lambda: tf.distribute.OneDeviceStrategy('/cpu:0'),
    lambda: tf.distribute.MirroredStrategy(['/cpu:0']),
], ids=['default', 'one_device', 'mirrored'])
def test_backup_resumes_after_the_last_finished_epoch(tmp_path, make_strategy):
  strategy = make_strategy()
  x = tf.random.stateless_normal((64, 3), seed=(1, 2))
  y = tf.cast(tf.reduce_sum(x, axis=1, keepdims=True) > 0, tf.float32)

  def model():
    with strategy.scope():
      m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
      # Eager: skips autograph's ~30 s first trace; backup works the same.
      m.compile('sgd', 'mse', run_eagerly=True)
    return m

  backup_dir = str(tmp_path / 'backup')
  first = model()
  with pytest.raises(RuntimeError, match='preempted'):
    first.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[
        strategy_lib.backup_callback(backup_dir, strategy), _Preempt(1)])

  second, epochs = model(), _Epochs()
  second.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[
      strategy_lib.backup_callback(backup_dir, strategy), epochs])
  assert epochs.seen == [2, 3, 4]  # Epochs 0 and 1 were not run again.
  assert not os.path.exists(os.path.join(backup_dir, 'chief', 'checkpoint'))

