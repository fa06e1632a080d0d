"""Crash-safe pushing: atomic versions, concurrent pushers, smoke test."""

import concurrent.futures
import os

import numpy as np
import pytest
import tensorflow as tf

from components.pusher import push


def _saved_model(path, scale=0.5, broken=False):
  """A tiny SavedModel with a serving signature over serialized examples."""
  class Module(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, examples):
      parsed = tf.io.parse_example(
          examples, {'x': tf.io.FixedLenFeature([1], tf.float32)})
      value = parsed['x'] * scale
      if broken:
        value = value * float('nan')
      return {'probability': tf.sigmoid(value)}

  module = Module()
  tf.saved_model.save(module, str(path),
                      signatures={'serving_default': module.serve})
  return str(path)


def _examples(n=4):
  return [tf.train.Example(features=tf.train.Features(feature={
      'x': tf.train.Feature(float_list=tf.train.FloatList(value=[float(i)]))
  })).SerializeToString() for i in range(n)]


def test_push_creates_a_complete_numbered_version(tmp_path):
  model = _saved_model(tmp_path / 'model')
  serving = tmp_path / 'serving'
  first = push.atomic_push(model, str(serving))
  second = push.atomic_push(model, str(serving))
  assert int(os.path.basename(second)) > int(os.path.basename(first))
  assert sorted(os.listdir(serving)) == sorted(
      [os.path.basename(first), os.path.basename(second)])  # No temp left.
  for version in (first, second):
    assert os.path.exists(os.path.join(version, 'saved_model.pb'))
    push.verify_serving(version, _examples())


def test_concurrent_pushes_all_land_complete(tmp_path):
  model = _saved_model(tmp_path / 'model')
  serving = str(tmp_path / 'serving')
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    targets = list(pool.map(lambda _: push.atomic_push(model, serving),
                            range(8)))
  assert len(set(targets)) == 8
  assert len(push.versions(serving)) == 8
  expected = sorted([push.SOURCE_MARKER] + [
      os.path.relpath(os.path.join(r, f), model)
      for r, _, fs in os.walk(model) for f in fs])
  for target in targets:
    got = sorted(os.path.relpath(os.path.join(r, f), target)
                 for r, _, fs in os.walk(target) for f in fs)
    assert got == expected


def test_a_failed_copy_leaves_no_version_and_no_temp(tmp_path, monkeypatch):
  model = _saved_model(tmp_path / 'model')
  serving = tmp_path / 'serving'

  def crash(*args, **kwargs):
    raise OSError('disk full')
  monkeypatch.setattr(push.shutil, 'copytree', crash)
  with pytest.raises(OSError, match='disk full'):
    push.atomic_push(model, str(serving))
  assert os.listdir(serving) == []


def test_a_model_is_found_where_it_was_pushed(tmp_path):
  model = _saved_model(tmp_path / 'model')
  serving = str(tmp_path / 'serving')
  assert push.find_pushed(serving, '/models/a') is None
  target = push.atomic_push(model, serving, source_uri='/models/a')
  push.atomic_push(model, serving, source_uri='/models/b')
  assert push.find_pushed(serving, '/models/a') == target


def test_stale_incoming_directories_are_cleaned(tmp_path):
  serving = tmp_path / 'serving'
  stale = serving / f'{push.INCOMING_PREFIX}crashed'
  stale.mkdir(parents=True)
  os.utime(stale, (0, 0))
  push.atomic_push(_saved_model(tmp_path / 'model'), str(serving))
  assert not stale.exists()


def test_verify_serving_returns_probabilities(tmp_path):
  values = push.verify_serving(_saved_model(tmp_path / 'model'), _examples(3))
  assert values.shape == (3, 1)
  assert np.all((values >= 0) & (values <= 1))


def test_verify_serving_rejects_a_broken_model(tmp_path):
  with pytest.raises(push.PushError, match='not probabilities'):
    push.verify_serving(_saved_model(tmp_path / 'bad', broken=True),
                        _examples())


def test_verify_serving_rejects_examples_it_cannot_parse(tmp_path):
  bad = [tf.train.Example().SerializeToString()]  # Lacks the feature 'x'.
  with pytest.raises(push.PushError, match='serving signature'):
    push.verify_serving(_saved_model(tmp_path / 'model'), bad)


def test_verify_serving_rejects_a_missing_model(tmp_path):
  with pytest.raises(push.PushError):
    push.verify_serving(str(tmp_path / 'absent'), _examples())
