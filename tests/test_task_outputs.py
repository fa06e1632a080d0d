"""What each task's run leaves for people and servers, without a pipeline run.

* the serving contract: each task's ``check_serving`` on fabricated outputs,
  and ``verify_serving`` delegating to it (a fake signature, no SavedModel);
* the run report rendered from synthetic gate.json / training.json for each
  task: the task's metrics, every check, the trivial predictor, the task's
  diagnostic figures;
* the end-of-run summary for each task.

The synthetic gate.json is built with the task's own accumulator and quality
checks, so its keys are those the gate writes.
"""

import html
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from matplotlib import image as mpimg

from components.gate import decision
from components.pusher import push
from core import config as config_lib
from core import tasks
from pipeline import local_runner, report

CLASSES = ['cash', 'card', 'other']
OVERRIDES = {
    'binary': [],
    'multiclass': ['task=multiclass', 'data.label=payment_type',
                   'data.features.categorical=[company]'],
    'regression': ['task=regression', 'data.label=tips'],
}
INFO = {'binary': {'positive_rate': 0.3},
        'multiclass': {'classes': CLASSES, 'frequencies': [0.5, 0.3, 0.2]},
        'regression': {'mean': 40.0, 'std': 10.0, 'target_transform': None,
                       'transformed_mean': 40.0, 'transformed_std': 10.0}}
PNG = b'\x89PNG\r\n\x1a\n'


# --------------------------------------------------------------------------
# The serving contract.


def _binary(n=4):
  return {'probability': np.linspace(0.1, 0.9, n).reshape(n, 1)}


def _multiclass(n=4):
  p = np.tile([0.6, 0.3, 0.1], (n, 1))
  return {'probabilities': p,
          'classes': np.array([[c.encode() for c in CLASSES]] * n)}


def _regression(n=4):
  return {'prediction': np.array([[12.5], [40.0], [-3.0], [1e6]])[:n]}


VALID = {'binary': _binary, 'multiclass': _multiclass,
         'regression': _regression}


@pytest.mark.parametrize('name', sorted(VALID))
def test_valid_outputs_pass(name):
  tasks.get(name).check_serving(VALID[name](), 4, INFO[name])


def _with(outputs, **changes):
  out = dict(outputs)
  for key, value in changes.items():
    if value is None:
      out.pop(key)
    else:
      out[key] = value
  return out


BROKEN = [
    # Missing output.
    ('binary', _with(_binary(), probability=None), "no serving output"),
    ('multiclass', _with(_multiclass(), probabilities=None),
     "no serving output 'probabilities'"),
    ('multiclass', _with(_multiclass(), classes=None),
     "no serving output 'classes'"),
    ('regression', {'probability': np.zeros((4, 1))},
     "no serving output 'prediction'"),
    # Wrong number of rows.
    ('binary', _binary(3), '3 rows of .probability. for 4 examples'),
    ('regression', _regression(2), '2 rows'),
    # Wrong width: two class probabilities for three classes.
    ('multiclass', _with(_multiclass(), probabilities=np.full((4, 2), 0.5)),
     r'shape \(4, 2\), expected \(4, 3\)'),
    ('multiclass', _with(_multiclass(), probabilities=np.full((4,), 0.5)),
     r'expected \(4, 3\)'),
    # Probabilities that are not probabilities.
    ('binary', _with(_binary(), probability=np.full((4, 1), 1.5)),
     'not probabilities'),
    ('binary', _with(_binary(), probability=np.full((4, 1), -0.1)),
     'not probabilities'),
    ('multiclass', _with(_multiclass(),
                         probabilities=np.tile([0.5, 0.3, 0.1], (4, 1))),
     'sum to 0.9.*not 1'),
    ('multiclass', _with(_multiclass(),
                         probabilities=np.tile([1.2, -0.1, -0.1], (4, 1))),
     'not finite and >= 0'),
    # NaN.
    ('binary', _with(_binary(), probability=np.full((4, 1), np.nan)),
     'not probabilities'),
    ('multiclass', _with(_multiclass(),
                         probabilities=np.tile([np.nan, 0.5, 0.5], (4, 1))),
     'not finite'),
    ('regression', {'prediction': np.array([[1.0], [np.nan], [2.0], [3.0]])},
     'not all finite'),
    ('regression', {'prediction': np.array([[1.0], [np.inf], [2.0], [3.0]])},
     'not all finite'),
    # Class names that are not the trained ones (order included).
    ('multiclass', _with(_multiclass(), classes=np.array(
        [[b'card', b'cash', b'other']] * 4)), 'class names .* are not the '
     'trained classes'),
    ('multiclass', _with(_multiclass(), classes=np.array(
        [[b'cash', b'card', b'cheque']] * 4)), 'not the trained classes'),
    ('multiclass', _with(_multiclass(), classes=np.array(
        [[b'cash', b'card']] * 4)), r'classes.*expected \(4, 3\)'),
]


@pytest.mark.parametrize('name,outputs,match', BROKEN)
def test_broken_outputs_break_the_contract(name, outputs, match):
  with pytest.raises(tasks.LabelError, match=match):
    tasks.get(name).check_serving(outputs, 4, INFO[name])


class _FakeModel:
  """What ``tf.saved_model.load`` returns: a signature answering ``outputs``."""

  def __init__(self, outputs):
    self.signatures = {'serving_default': lambda examples: {
        k: tf.constant(v) for k, v in outputs.items()}}


def _fake_model_dir(tmp_path, monkeypatch, name, outputs):
  model_dir = str(tmp_path / 'model')
  tasks.write_model_task(model_dir, tasks.get(name), 'label', INFO[name])
  monkeypatch.setattr(push.tf.saved_model, 'load',
                      lambda path: _FakeModel(outputs))
  return model_dir


@pytest.mark.parametrize('name', sorted(VALID))
def test_verify_serving_returns_the_outputs(tmp_path, monkeypatch, name):
  model_dir = _fake_model_dir(tmp_path, monkeypatch, name, VALID[name]())
  outputs = push.verify_serving(model_dir, [b''] * 4)
  assert sorted(outputs) == sorted(VALID[name]())


@pytest.mark.parametrize('name,outputs,match', BROKEN)
def test_verify_serving_delegates_to_the_task(tmp_path, monkeypatch, name,
                                              outputs, match):
  model_dir = _fake_model_dir(tmp_path, monkeypatch, name, outputs)
  with pytest.raises(push.PushError) as raised:
    push.verify_serving(model_dir, [b''] * 4)
  message = str(raised.value)
  assert message.startswith(f'{model_dir}: the {name} serving contract is '
                            'broken: ')
  assert re.search(match, message), message
  assert isinstance(raised.value.__cause__, tasks.LabelError)


def test_verify_serving_refuses_a_model_without_task_json(tmp_path,
                                                         monkeypatch):
  model_dir = tmp_path / 'model'
  model_dir.mkdir()
  monkeypatch.setattr(push.tf.saved_model, 'load',
                      lambda path: _FakeModel(_binary()))
  with pytest.raises(push.PushError, match='refused: .*task.json.*records no '
                     'task'):
    push.verify_serving(str(model_dir), [b''] * 4)


# --------------------------------------------------------------------------
# Synthetic run records, in the formats the gate and the Trainer write.


def _config(name):
  return config_lib.load_config(overrides=OVERRIDES[name])


def _pairs(name, n, noise, seed):
  """(labels, predictions) with some signal, as the gate's TFMA sees them."""
  rng = np.random.default_rng(seed)
  if name == 'binary':
    y = (rng.random(n) < 0.3).astype(int)
    p = np.clip(0.3 + (y - 0.3) * 0.5 + rng.normal(0, noise, n), 0.01, 0.99)
    return y.reshape(-1, 1), p.reshape(-1, 1)
  if name == 'multiclass':
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(0, noise * 4, (n, 3))
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y.reshape(-1, 1), p
  y = rng.normal(40, 10, n)
  return y.reshape(-1, 1), (y + rng.normal(0, noise * 10, n)).reshape(-1, 1)


def _measure(name, n, noise, seed):
  task = tasks.get(name)
  return task.accumulator(INFO[name]).add_batch(
      *_pairs(name, n, noise, seed)).result()


SLICE = 'company=Flash Cab'


def gate_json(name, config, train_noise=0.3, held_out_noise=0.32,
              failing_slice=False):
  """gate.json as the gate writes it: the task's accumulator on synthetic
  predictions, then the gate's own decision."""
  held = {'': _measure(name, 400, held_out_noise, 1)}
  train = {'': _measure(name, 300, train_noise, 2)}
  if failing_slice:  # Big enough to be checked, and over-fitted.
    held[SLICE] = _measure(name, 250, 1.0, 3)
    train[SLICE] = _measure(name, 250, 0.05, 4)
  return decision.decide(
      tasks.get(name), held, train, None, config.gate,
      baseline_note='no model blessed yet: no baseline check').to_dict()


def training_json(name, gate):
  task = tasks.get(name)
  train, held = gate['metrics']['train'][''], gate['metrics']['held_out']['']
  epochs = []
  for epoch in (1, 2, 3):
    shrink = 1 + 0.02 * (3 - epoch)
    record = {
        'epoch': epoch,
        'train': {m: train[m] * (shrink if not task.metrics[m].higher_is_better
                                 else 1 / shrink) for m in task.metrics},
        'eval': {m: held[m] * (shrink if not task.metrics[m].higher_is_better
                               else 1 / shrink) for m in task.metrics},
        'fit_loss': 0.5 / epoch}
    record['gap'] = {m: task.metrics[m].gap(record['train'][m],
                                            record['eval'][m])
                     for m in task.metrics}
    epochs.append(record)
  return {
      'task': name, 'label_info': INFO[name], 'epochs': epochs,
      'epochs_run': 3,
      'early_stopping': {'monitor': f'val_{task.default_monitor}',
                         'best_epoch': 2, 'best_value': 0.25,
                         'stopped_early': False, 'restored': True},
      'regularization': {'l2': 1e-3, 'dropout': 0.2, 'active': ['l2',
                                                                  'dropout']},
      'weights': {'kernel_count': 1234, 'kernel_l2_norm': 3.5,
                  'kernel_l1_norm': 40.0, 'zero_tolerance': 1e-3,
                  'near_zero_fraction': 0.015},
  }


def run_result(name, gate, training, blessed=None):
  blessed = gate['blessed'] if blessed is None and gate else bool(blessed)
  return local_runner.RunResult(
      run_id='2026-01-01T00:00:00', nodes={'example_gen': 'CACHED',
                                           'trainer': 'COMPLETE',
                                           'gate': 'COMPLETE'},
      seconds={'example_gen': 0.0, 'trainer': 12.3, 'gate': 4.5},
      blessed=blessed, gate=gate, training=training,
      pushed_to='/serving/7' if blessed else None, pipeline_root='/root',
      metadata_path='/m.sqlite', wall_seconds=42)


def _synthetic(name, **gate_kwargs):
  config = _config(name)
  gate = gate_json(name, config, **gate_kwargs)
  return config, gate, training_json(name, gate)


# --------------------------------------------------------------------------
# The report.


def _text(markup: str) -> str:
  return html.unescape(' '.join(re.sub(r'<[^>]+>', ' ', markup).split()))


def _render(tmp_path, name, **gate_kwargs):
  config, gate, training = _synthetic(name, **gate_kwargs)
  directory = str(tmp_path / 'report')
  os.makedirs(directory)
  page = report.render(run_result(name, gate, training), config, directory)
  return page, gate, training, directory


def _assert_png(directory, name):
  path = os.path.join(directory, name)
  with open(path, 'rb') as f:
    assert f.read(8) == PNG, name
  pixels = mpimg.imread(path)
  assert pixels.shape[0] > 200 and pixels.shape[1] > 300, (name, pixels.shape)
  assert pixels[..., :3].std() > 0.05, name


@pytest.mark.parametrize('name', sorted(VALID))
def test_report_draws_the_task_diagnostics(tmp_path, name):
  page, gate, _, directory = _render(tmp_path, name)
  task = tasks.get(name)
  assert task.diagnostics
  for figure in ('curves', 'gap', 'gate') + task.diagnostics:
    assert f'<img src="{figure}.png"' in page, figure
    _assert_png(directory, f'{figure}.png')
  others = set(report.DIAGNOSTICS) - set(task.diagnostics)
  for figure in others:
    assert not os.path.exists(os.path.join(directory, f'{figure}.png'))
  text = _text(page)
  assert f'Diagnostics ({name})' in text and f'Task {name} . Decision' in text


@pytest.mark.parametrize('name', sorted(VALID))
def test_report_lists_every_check_and_the_task_metrics(tmp_path, name):
  page, gate, training, _ = _render(tmp_path, name, failing_slice=True)
  text = _text(page)
  assert any(c['slice'] == SLICE for c in gate['checks'])
  assert ('Decision: BLESSED' if gate['blessed'] else 'Decision: NOT blessed'
          ) in text
  for check in gate['checks']:
    row = (f"{check['kind']} {check['metric']} {check['slice'] or 'all'} "
           f"{check['value']:.4f} {check['comparison']} "
           f"{check['threshold']:.4f} "
           f"{'passed' if check['passed'] else 'FAILED'}")
    assert row in text, row
  task = tasks.get(name)
  test = gate['metrics']['held_out']['']
  assert ('test (held out) ' + ' '.join(f'{test[m]:.4f}' for m in task.metrics)
          + f" {int(test['example_count'])}") in text
  assert 'scored on ' + ' '.join(task.metrics) + ' rows' in text
  assert 'Baseline: no model blessed yet: no baseline check' in text
  # The epoch table: every metric of the task, train and eval, and its gap.
  for epoch in training['epochs']:
    cells = [str(epoch['epoch'])] + [
        f"{epoch[split][m]:.4f}" for m in task.metrics
        for split in ('train', 'eval')] + [
            local_runner.format_gap(task.metrics[m], epoch['gap'][m])
            if task.metrics[m].relative_gap else f"{epoch['gap'][m]:.4f}"
            for m in task.metrics]
    assert ' '.join(cells) in text, cells


def test_report_binary_trivial_predictor_and_pr_curve(tmp_path):
  page, gate, _, _ = _render(tmp_path, 'binary')
  text = _text(page)
  test = gate['metrics']['held_out']['']
  assert (f"Trivial predictor on test: majority class "
          f"{test['majority_accuracy']:.4f}, prior log loss "
          f"{test['prior_log_loss']:.4f}.") in text
  assert (f"trivial predictor (train prior / mean), test "
          f"{test['majority_accuracy']:.4f} - - {test['prior_log_loss']:.4f} "
          f"{int(test['example_count'])}") in text
  assert (f"PR-AUC on test {test['pr_auc']:.4f} against a positive rate of "
          f"{test['mean_label']:.4f}") in text
  assert f"mean_label {test['mean_label']:.4f}" in text  # Also measured.
  assert 'majority_rate' not in page


def test_report_multiclass_confusion_matrix_and_recall_table(tmp_path):
  page, gate, _, _ = _render(tmp_path, 'multiclass')
  text = _text(page)
  arrays = gate['arrays']['held_out']
  train = gate['arrays']['train']
  cm = np.asarray(arrays['confusion_matrix'])
  assert cm.shape == (3, 3)
  for i, name in enumerate(CLASSES):
    row = (f"{name} {int(cm[i].sum())} {arrays['class_frequency'][i]:.2%} "
           f"{arrays['class_recall'][i]:.4f} {train['class_recall'][i]:.4f}")
    assert row in text, row
  test = gate['metrics']['held_out']['']
  assert (f"Trivial predictor on test: majority class "
          f"{test['majority_accuracy']:.4f}, prior log loss") in text
  assert f"balanced_accuracy {test['balanced_accuracy']:.4f}" in text


def test_report_regression_relative_gaps_and_trivial_predictor(tmp_path):
  page, gate, training, _ = _render(tmp_path, 'regression')
  text = _text(page)
  test = gate['metrics']['held_out']['']
  trivial = f"train-mean RMSE {test['mean_rmse']:.4g}"
  assert f'Trivial predictor on test: {trivial}.' in text
  assert 'gap rmse (eval / train - 1) gap mae (eval / train - 1) gap r2' in text
  gap = training['epochs'][0]['gap']['rmse']
  assert f'{gap:+.1%}' in text
  assert re.search(r'residuals of sampled rows mean \(bias\) std median '
                   r'\|residual\| train sample 300 [+-]\d', text), text


def test_report_of_a_run_without_gate_or_model(tmp_path):
  config = _config('regression')
  result = run_result('regression', None, None)
  result.nodes['trainer'] = 'RUNNING'
  directory = str(tmp_path / 'report')
  os.makedirs(directory)
  text = _text(report.render(result, config, directory))
  assert 'The gate did not run in this run.' in text
  assert 'no held-out predictions to diagnose' in text
  assert "No training record: the Trainer's state in this run is RUNNING." \
      in text
  assert 'task regression' in text  # From the configuration.
  assert os.listdir(directory) == []


def test_report_of_a_gate_json_without_arrays(tmp_path):
  """Every diagnostic says what is missing rather than failing."""
  for name in sorted(VALID):
    config, gate, training = _synthetic(name)
    del gate['arrays']
    directory = str(tmp_path / name)
    os.makedirs(directory)
    text = _text(report.render(run_result(name, gate, training), config,
                               directory))
    assert 'in gate.json.' in text, name


def test_label_summary_counts_classes():
  values = {'train': np.array([0, 0, 1, 2, 2, 2]),
            'test': np.array([0, 1, -1, 2])}
  summary = report.summarize_labels(values, CLASSES)
  assert summary.discrete
  assert summary.classes == CLASSES + [report.UNKNOWN]
  assert summary.counts['train'] == {'cash': 2, 'card': 1, 'other': 3,
                                     report.UNKNOWN: 0}
  assert summary.counts['test'] == {'cash': 1, 'card': 1, 'other': 1,
                                    report.UNKNOWN: 1}
  many = report.summarize_labels(
      {'train': np.arange(20) % 10}, [f'c{i}' for i in range(10)])
  assert many.classes == [f'c{i}' for i in range(
      report.MAX_CLASSES_SHOWN - 1)] + [report.OTHER]
  assert many.counts['train'][report.OTHER] == 2 * (
      10 - report.MAX_CLASSES_SHOWN + 1)
  binary = report.summarize_labels({'test': np.array([0, 1, 1, 0])}, None)
  assert binary.classes == ['0', '1']


def test_data_figure_and_table_per_label_kind(tmp_path):
  rows = {'train': 60, 'eval': 20, 'test': 20}
  binary = report.summarize_labels(
      {'train': np.array([0, 1] * 30), 'eval': np.array([0, 0, 0, 1] * 5),
       'test': np.array([1] * 5 + [0] * 15)}, None)
  text = _text(report.label_table(rows, binary))
  assert 'split rows label 0 label 1 note' in text
  assert 'test 20 15 (75.00%) 5 (25.00%)' in text and 'total 100' in text
  rng = np.random.default_rng(0)
  numeric = report.summarize_labels(
      {s: rng.normal(5, 2, n) for s, n in rows.items()}, None)
  assert not numeric.discrete
  text = _text(report.label_table(rows, numeric))
  test = numeric.values['test']
  assert f'test 20 {test.mean():.4g} {test.std():.4g}' in text
  for i, labels in enumerate((binary, numeric, None)):
    directory = tmp_path / str(i)
    directory.mkdir()
    assert report.data_figure(rows, labels, str(directory)) == 'data.png'
    _assert_png(str(directory), 'data.png')


# --------------------------------------------------------------------------
# The end-of-run summary.


def _metric_row(name, train, eval_, test, gap):
  return re.compile(rf'  {name}\s+{train:.4f}\s+{eval_:.4f}\s+{test:.4f}'
                    + (r'\s+' + re.escape(gap) if gap else '') + '$', re.M)


@pytest.mark.parametrize('name', sorted(VALID))
def test_summary_rows_are_the_task_metrics(name):
  config, gate, training = _synthetic(name)
  text = local_runner.format_summary(run_result(name, gate, training))
  task = tasks.get(name)
  train, test = gate['metrics']['train'][''], gate['metrics']['held_out']['']
  best = training['epochs'][1]['eval']  # Early stopping restored epoch 2.
  gaps = {c['metric']: c['value'] for c in gate['checks']
          if c['kind'] == 'gap' and not c['slice']}
  for m, metric in task.metrics.items():
    gap = ('' if m not in gaps else f'{gaps[m]:+.1%}' if metric.relative_gap
           else f'{gaps[m]:+.4f}')  # Binary: no max_gap for pr_auc.
    assert _metric_row(m, train[m], best[m], test[m], gap).search(text), (
        m, text)
  assert f'Training ({name}): 3 epochs, regularization l2, dropout' in text
  for check in gate['checks']:
    assert (f"{'ok  ' if check['passed'] else 'FAIL'} {check['kind']:<8} "
            f"{check['metric']}: {check['value']:.4f} {check['comparison']} "
            f"{check['threshold']:.4f}") in text
  assert len(text.splitlines()) < 25  # Short.
  # Why there was no baseline check.
  assert '  note: no model blessed yet: no baseline check' in text


def test_summary_binary_trivial_predictor():
  _, gate, training = _synthetic('binary')
  text = local_runner.format_summary(run_result('binary', gate, training))
  test = gate['metrics']['held_out']['']
  assert (f"  trivial predictor on test: majority class "
          f"{test['majority_accuracy']:.4f}, prior log loss "
          f"{test['prior_log_loss']:.4f}") in text.splitlines()
  assert 'gap(train-test)' in text and '%' not in text


def test_summary_multiclass_failed_checks_and_slices():
  _, gate, training = _synthetic('multiclass', failing_slice=True)
  text = local_runner.format_summary(run_result('multiclass', gate, training))
  # The check's interval (or verdict) follows its threshold.
  assert re.search(r'  FAIL gap      accuracy \[company=Flash Cab\]: 0\.\d{4} '
                   r'<= 0\.0800\b', text, re.M), text
  assert f"Blessed: NO ({gate['reason']})" in text
  assert 'Pushed: nothing' in text
  assert 'trivial predictor on test: majority class ' in text


def test_summary_regression_relative_gap_and_train_mean():
  _, gate, training = _synthetic('regression')
  text = local_runner.format_summary(run_result('regression', gate, training))
  test = gate['metrics']['held_out']['']
  assert (f"  trivial predictor on test: train-mean RMSE "
          f"{test['mean_rmse']:.4g}") in text.splitlines()
  assert 'gap(train-test; %: test/train - 1)' in text
  assert re.search(r'  rmse .* [+-]\d+\.\d%$', text, re.M), text
  if any(c['metric'] == 'r2' and c['kind'] == 'gap' for c in gate['checks']):
    assert re.search(r'  r2 .* [+-]\d\.\d{4}$', text, re.M), text


def test_run_result_task_and_legacy_records():
  _, gate, training = _synthetic('regression')
  assert run_result('regression', gate, training).task.name == 'regression'
  assert run_result('regression', None, training).task.name == 'regression'
  legacy = dict(gate)
  del legacy['task']
  assert local_runner.task_of(legacy, None).name == 'binary'
  assert local_runner.task_of(None, None, 'multiclass').name == 'multiclass'


def _artifact(uri, splits=None):
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  artifact = metadata_store_pb2.Artifact(uri=uri)
  if splits:
    artifact.properties['split_names'].string_value = (
        '[' + ','.join(f'"{s}"' for s in splits) + ']')
  return artifact


def test_data_section_derives_the_label_with_transforms_graph(tmp_path):
  """The label distribution comes from Transform's own graph applied to the
  raw examples (TFX's taxi test data: its label ``tips_xf`` is 0/1)."""
  from pipeline import metadata  # pylint: disable=g-import-not-at-top
  from pipeline.factory import NodeIds  # pylint: disable=g-import-not-at-top
  from tfx.components import testdata  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(testdata.__file__)
  splits = ['train', 'eval']
  outputs = {
      NodeIds.EXAMPLE_GEN: {'examples': [_artifact(
          os.path.join(root, 'csv_example_gen'), splits)]},
      NodeIds.STATISTICS_GEN: {'statistics': [_artifact(
          os.path.join(root, 'statistics_gen'), splits)]},
      NodeIds.TRANSFORM: {'transform_graph': [_artifact(
          os.path.join(root, 'transform', 'transform_graph'))]},
  }
  runs = {node: metadata.NodeRun(node, 'COMPLETE', None, out)
          for node, out in outputs.items()}
  config = config_lib.load_config(overrides=['data.label=tips_xf'])
  directory = str(tmp_path)
  text = _text(report._data_section(  # pylint: disable=protected-access
      run_result('binary', None, None), config, tasks.get('binary'), runs,
      directory))
  assert 'split rows label 0 label 1 note' in text
  match = re.search(r'train (\d+) (\d+) \((\d+\.\d+)%\) (\d+) \((\d+\.\d+)%\)',
                    text)
  assert match, text
  rows, zeros, ones = (int(match.group(i)) for i in (1, 2, 4))
  assert zeros > 0 and ones > 0
  # (TFX's statistics and examples test data come from different runs.)
  assert zeros + ones == rows or f'first {zeros + ones} rows' in text
  _assert_png(directory, 'data.png')


def test_summary_of_a_refused_gap_names_the_limit_this_data_can_measure():
  _, gate, training = _synthetic('multiclass')
  [check] = [c for c in gate['checks']
             if c['kind'] == 'gap' and c['metric'] == 'accuracy'
             and not c['slice']]
  check.update(verdict='refused', passed=False, low=-0.02, high=0.1,
               rows_needed=765)
  text = local_runner.format_summary(run_result('multiclass', gate, training,
                                                blessed=False))
  assert ('refused, ~765 held-out rows would decide it; measurable here: '
          'gate.max_gap.accuracy >= 0.06') in text, text


def test_summary_says_when_training_ended_still_improving():
  _, gate, training = _synthetic('binary')
  text = local_runner.format_summary(run_result('binary', gate, training))
  assert 'still improving' not in text  # Best epoch 2 of 3.
  training['early_stopping'].update(best_epoch=3)
  text = local_runner.format_summary(run_result('binary', gate, training))
  assert ('note: the best epoch was the last, 3: the eval metric was still '
          'improving when model.epochs ended training') in text, text


def test_summary_shows_the_eval_log_loss_after_calibration():
  _, gate, training = _synthetic('binary')
  text = local_runner.format_summary(run_result('binary', gate, training))
  assert 'calibrated' not in text
  training['calibration'] = {'temperature': 0.749, 'eval_loss': 0.3,
                             'eval_loss_calibrated': 0.2468}
  text = local_runner.format_summary(run_result('binary', gate, training))
  [row] = [line.split() for line in text.splitlines()
           if line.strip().startswith('log_loss')]
  assert row[2] == '0.2468', text  # metric, train, eval, test, gap
  assert ('probabilities calibrated with temperature 0.749, fitted on eval, '
          'whose log loss was 0.3000 before)') in text


@pytest.mark.parametrize('value,rows_needed,says', [
    # Past the limit already: more rows would only confirm it; a looser
    # limit "measurable here" would not pass it.
    (0.07, 765, 'refused, its point estimate is past the limit too; ~765 '
     'held-out rows would decide it'),
    # At the limit: no realistic held-out split decides it.
    (0.0299, 10 ** 9, 'refused, its estimate is too close to the limit for '
     'more held-out rows to decide it; measurable here'),
])
def test_summary_of_an_undecided_gap_says_what_more_rows_would_do(
    value, rows_needed, says):
  _, gate, training = _synthetic('multiclass')
  [check] = [c for c in gate['checks']
             if c['kind'] == 'gap' and c['metric'] == 'accuracy'
             and not c['slice']]
  check.update(verdict='refused', passed=False, value=value, threshold=0.03,
               low=value - 0.06, high=value + 0.06, rows_needed=rows_needed)
  text = local_runner.format_summary(run_result('multiclass', gate, training,
                                                blessed=False))
  assert says in text, text
  if value > 0.03:
    assert 'measurable here' not in text


def test_summary_and_report_of_an_ensemble_show_its_eval_and_members(
    tmp_path):
  config, gate, training = _synthetic('binary')
  plain = local_runner.format_summary(run_result('binary', gate, training))
  assert 'ensemble' not in plain
  training['ensemble'] = {
      'size': 3, 'max_rows': 5000, 'eval': {'accuracy': 0.8123, 'auc': 0.9,
                                            'pr_auc': 0.7, 'log_loss': 0.31},
      'members': [{'seed': 42 + 1000 * i, 'epochs_run': 9, 'best_epoch': b,
                   'best_value': 0.9} for i, b in enumerate((5, 7, 3))]}
  text = local_runner.format_summary(run_result('binary', gate, training))
  assert ('an ensemble of 3 networks from different seeds (train split <= '
          'model.ensemble_max_rows 5,000 rows), averaged; their best epochs '
          '5, 7, 3') in text, text
  # The eval column is the averaged model's, not the first member's epoch.
  [row] = [line.split() for line in text.splitlines()
           if line.strip().startswith('accuracy')]
  assert row[2] == '0.8123', text
  directory = str(tmp_path / 'report')
  os.makedirs(directory)
  page = _text(report.render(run_result('binary', gate, training), config,
                             directory))
  assert 'Model: an ensemble of 3 networks' in page
  assert 'the gate and serving see their average' in page
