"""Crash-safe pushing: atomic versions, concurrent pushers, smoke test.

The smoke test holds each model to its task's serving contract, the task
read from the record the Trainer writes into the model (``task.json``); the
contract checks themselves, on fabricated outputs, are in
test_task_outputs.py.
"""

import concurrent.futures
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from components.pusher import push
from core import tasks

CLASSES = ['cash', 'card', 'other']
INFO = {'binary': {'positive_rate': 0.3},
        'multiclass': {'classes': CLASSES, 'frequencies': [0.5, 0.3, 0.2]},
        'regression': {'mean': 1.0, 'std': 2.0, 'target_transform': None,
                       'transformed_mean': 1.0, 'transformed_std': 2.0}}


def _outputs(task, x, scale, broken):
  """Serving outputs of ``task`` for features ``x`` ([batch, 1])."""
  value = x * scale
  if broken:
    value = value * float('nan')
  if task == 'binary':
    return {'probability': tf.sigmoid(value)}
  if task == 'multiclass':
    logits = tf.concat([value, 2 * value, tf.zeros_like(value)], axis=1)
    return {'probabilities': tf.nn.softmax(logits),
            'classes': tf.tile(tf.constant(CLASSES)[tf.newaxis, :],
                               [tf.shape(x)[0], 1])}
  return {'prediction': value}


def _saved_model(path, scale=0.5, broken=False, task='binary',
                 record_task=True):
  """A tiny SavedModel with a serving signature over serialized examples,
  recording ``task`` as the Trainer does unless ``record_task`` is False."""
  class Module(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, examples):
      parsed = tf.io.parse_example(
          examples, {'x': tf.io.FixedLenFeature([1], tf.float32)})
      return _outputs(task, parsed['x'], scale, broken)

  module = Module()
  tf.saved_model.save(module, str(path),
                      signatures={'serving_default': module.serve})
  if record_task:
    tasks.write_model_task(str(path), tasks.get(task), 'label', INFO[task])
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


def test_a_pushed_version_keeps_the_task_record(tmp_path):
  model = _saved_model(tmp_path / 'model', task='multiclass')
  target = push.atomic_push(model, str(tmp_path / 'serving'))
  task, label, info = tasks.read_model_task(target)
  assert (task.name, label, info) == ('multiclass', 'label', INFO['multiclass'])


def test_verify_serving_returns_probabilities(tmp_path):
  outputs = push.verify_serving(_saved_model(tmp_path / 'model'), _examples(3))
  values = outputs['probability']
  assert values.shape == (3, 1)
  assert np.all((values >= 0) & (values <= 1))


def test_verify_serving_multiclass_and_regression(tmp_path):
  outputs = push.verify_serving(
      _saved_model(tmp_path / 'multi', task='multiclass'), _examples(3))
  assert outputs['probabilities'].shape == (3, 3)
  np.testing.assert_allclose(outputs['probabilities'].sum(axis=1), 1.0,
                             rtol=1e-5)
  assert [c.decode() for c in outputs['classes'][0]] == CLASSES
  outputs = push.verify_serving(
      _saved_model(tmp_path / 'reg', task='regression', scale=3.0),
      _examples(4))
  np.testing.assert_allclose(outputs['prediction'].ravel(), [0, 3, 6, 9])


@pytest.mark.parametrize('task,match', [
    ('binary', 'binary serving contract.*not probabilities'),
    ('multiclass', 'multiclass serving contract.*not finite'),
    ('regression', 'regression serving contract.*not all finite')])
def test_verify_serving_rejects_a_broken_model(tmp_path, task, match):
  with pytest.raises(push.PushError, match=match):
    push.verify_serving(_saved_model(tmp_path / 'bad', broken=True, task=task),
                        _examples())


def test_verify_serving_holds_a_model_to_its_recorded_task(tmp_path):
  """A regression model's unbounded predictions pass as regression, but not
  when the model says it is binary."""
  model = _saved_model(tmp_path / 'model', task='regression', scale=3.0)
  push.verify_serving(model, _examples())
  tasks.write_model_task(model, tasks.get('binary'), 'label', INFO['binary'])
  with pytest.raises(push.PushError, match='binary serving contract'):
    push.verify_serving(model, _examples())
  # A multiclass record, but the model answers no class probabilities.
  tasks.write_model_task(model, tasks.get('multiclass'), 'label',
                         INFO['multiclass'])
  with pytest.raises(push.PushError,
                     match=re.escape(model) + '.*probabilities'):
    push.verify_serving(model, _examples())


def test_verify_serving_refuses_a_model_without_a_task(tmp_path):
  model = _saved_model(tmp_path / 'model', record_task=False)
  with pytest.raises(push.PushError,
                     match=re.escape(f'{model}: refused:') + '.*task'):
    push.verify_serving(model, _examples())


def test_verify_serving_refuses_an_unreadable_task_record(tmp_path):
  model = _saved_model(tmp_path / 'model')
  with open(os.path.join(model, tasks.TASK_JSON), 'w') as f:
    f.write('{"task": "ranking", "label": "y", "info": {}}')
  with pytest.raises(push.PushError, match="unknown task 'ranking'"):
    push.verify_serving(model, _examples())


def test_verify_serving_rejects_examples_it_cannot_parse(tmp_path):
  bad = [tf.train.Example().SerializeToString()]  # Lacks the feature 'x'.
  with pytest.raises(push.PushError, match='serving signature'):
    push.verify_serving(_saved_model(tmp_path / 'model'), bad)


def test_verify_serving_rejects_a_missing_model(tmp_path):
  with pytest.raises(push.PushError, match='no model there'):
    push.verify_serving(str(tmp_path / 'absent'), _examples())


# --------------------------------------------------------------------------
# One model, one publication; remote versions; a blessing for its model only.


def test_publish_twice_the_same_model_serves_one_version(tmp_path):
  model, serving = _saved_model(tmp_path / 'model'), str(tmp_path / 'serving')
  checked = []
  first = push.publish(model, serving, '/models/a', verify=lambda: checked.append(1))
  again = push.publish(model, serving, '/models/a', verify=lambda: checked.append(2))
  assert first == (again[0], True) and again[1] is False
  assert checked == [1]  # The smoke test runs only for a real publication.
  assert push.versions(serving) == [int(os.path.basename(first[0]))]


def test_concurrent_publishers_of_one_model_publish_it_once(tmp_path):
  model, serving = _saved_model(tmp_path / 'model'), str(tmp_path / 'serving')
  with concurrent.futures.ProcessPoolExecutor(4) as pool:
    results = list(pool.map(push.publish, [model] * 4, [serving] * 4,
                            ['/models/a'] * 4))
  assert len(push.versions(serving)) == 1
  assert sorted(new for _, new in results) == [False, False, False, True]
  assert len({target for target, _ in results}) == 1


def test_a_failed_smoke_test_publishes_nothing(tmp_path):
  model, serving = _saved_model(tmp_path / 'model'), str(tmp_path / 'serving')

  def broken():
    raise push.PushError('no')
  with pytest.raises(push.PushError):
    push.publish(model, serving, '/models/a', verify=broken)
  assert push.versions(serving) == []


def test_remote_pushes_in_one_second_get_their_own_complete_versions(tmp_path):
  # ram:// is an object store to TensorFlow (no rename): the remote path.
  model, serving = _saved_model(tmp_path / 'model'), 'ram://serving/m'
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    targets = list(pool.map(
        lambda i: push.atomic_push(model, serving, source_uri=f'/models/{i}'),
        range(3)))
  assert len(set(targets)) == 3 and len(push.versions(serving)) == 3
  for i, target in enumerate(targets):
    assert tf.io.gfile.exists(f'{target}/saved_model.pb')
    assert push.find_pushed(serving, f'/models/{i}') == target


def test_a_blessing_is_for_the_model_it_judged():
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top
  from components.pusher import component  # pylint: disable=g-import-not-at-top
  model, other, blessing = (standard_artifacts.Model(),
                            standard_artifacts.Model(),
                            standard_artifacts.ModelBlessing())
  model.uri, other.uri, blessing.uri = '/m/1', '/m/2', '/b/1'
  blessing.set_string_custom_property('current_model', '/m/1')
  component.check_blessing_is_for(blessing, model)  # By URI: no MLMD ids.
  with pytest.raises(push.PushError, match='not for model /m/2'):
    component.check_blessing_is_for(blessing, other)
  model.id, other.id = 7, 8
  blessing.set_int_custom_property('current_model_id', 7)
  component.check_blessing_is_for(blessing, model)
  with pytest.raises(push.PushError, match='id 7'):
    component.check_blessing_is_for(blessing, other)
