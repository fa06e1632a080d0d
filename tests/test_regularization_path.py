"""The regularization path in the report, without a pipeline run.

* the search's trials (a ``trials.json`` as ``tuning.RegularizationSearch``
  writes it, in a Tuner's ``tuner_results`` artifact) drawn as a figure and
  a table, the chosen trial marked;
* the "what regularization bought" line, measured and not;
* the factory's Tuner runs ``tuning.Executor`` (which puts ``trials.json``
  into ``tuner_results``) and only the Trainer reads ``report``.

The synthetic gate.json and training.json are test_task_outputs.py's.
"""

import json
import os
import re

import numpy as np
import pytest
from matplotlib import image as mpimg
from ml_metadata.proto import metadata_store_pb2

from core import config as config_lib
from core import tasks
from pipeline import metadata, report
from pipeline.factory import NodeIds
import test_task_outputs as synthetic


def _trial(trial_id, score, train, epochs=4, **hp):
  values = {'use_l2': False, 'l2': 1e-5, 'use_weight_decay': False,
            'weight_decay': 1e-4, 'dropout': 0.1, 'batch_norm': False,
            'input_noise': 0.0, 'use_mixup': False, 'mixup': 0.2,
            'lr_schedule': 'constant', 'learning_rate': 3e-3, 'width': 64,
            'depth': 2}
  values.update(hp)
  return {'trial_id': trial_id, 'hyperparameters': values,
          'objective': 'val_auc', 'score': score, 'train': train,
          'gap': train - score, 'epochs': epochs, 'seconds': 2.5,
          'status': 'COMPLETED'}


TRIALS = [
    _trial('00', 0.91, 0.99, dropout=0.0, width=256, depth=3),
    _trial('01', 0.93, 0.95, use_l2=True, l2=1e-4, dropout=0.3),
    _trial('02', 0.92, 0.93, use_mixup=True, mixup=0.3, batch_norm=True,
           lr_schedule='cosine', width=32, depth=1, learning_rate=1e-3),
    _trial('03', 0.90, 0.97, use_weight_decay=True, weight_decay=1e-3,
           input_noise=0.1, periodic_embedding=True, periodic_sigma=0.5),
]


def _runs(tmp_path, records):
  """A run whose Tuner left ``records`` in its tuner_results artifact."""
  uri = tmp_path / 'tuner_results'
  uri.mkdir()
  (uri / 'trials.json').write_text(json.dumps(records))
  return {NodeIds.TUNER: metadata.NodeRun(
      node_id=NodeIds.TUNER, state='COMPLETE',
      execution=metadata_store_pb2.Execution(),
      outputs={'tuner_results': [metadata_store_pb2.Artifact(uri=str(uri))]})}


def _page(tmp_path, records, training_extra=None, overrides=()):
  config = config_lib.load_config(overrides=['tuning.enabled=true',
                                             *overrides])
  gate = synthetic.gate_json('binary', config)
  training = {**synthetic.training_json('binary', gate),
              'model': {'hidden_units': [64, 32], 'learning_rate': 0.003},
              **(training_extra or {})}
  result = synthetic.run_result('binary', gate, training)
  result.nodes[NodeIds.TUNER] = 'COMPLETE'
  directory = tmp_path / 'report'
  directory.mkdir()
  page = report.render(result, config, str(directory),
                       _runs(tmp_path, records))
  return page, training, str(directory)


def _rows(markup):
  return [synthetic._text('<tr' + row)  # pylint: disable=protected-access
          for row in markup.split('<tr')[1:]]


def test_trials_figure_and_table_from_trials_json(tmp_path):
  page, _, directory = _page(tmp_path, TRIALS)
  assert '<img src="trials.png"' in page
  with open(os.path.join(directory, 'trials.png'), 'rb') as f:
    assert f.read(8) == synthetic.PNG
  pixels = mpimg.imread(os.path.join(directory, 'trials.png'))
  assert pixels.shape[0] > 300 and pixels.shape[1] > 800, pixels.shape
  assert pixels[..., :3].std() > 0.05
  text = synthetic._text(page)  # pylint: disable=protected-access
  assert 'The search ran 4 trial(s) in 10 s' in text
  assert ('The chosen trial, 2, scored 0.9300 with a gap of +0.0200' in text)
  start = page.index('Regularization path: what it bought')
  rows = {r.split()[0]: r for r in _rows(page[start:page.index('<h2>Data')])
          if r.split()[0].isdigit()}
  assert sorted(rows) == ['1', '2', '3', '4']
  # The settings as the Trainer applies them: the configured early stopping
  # is in every trial, the searched techniques where the trial chose them.
  assert rows['1'].startswith('1 early_stopping - 256 x 3 0.003 0.9100 '
                              '0.9900 0.0800 4')
  assert rows['2'].startswith('2 l2, dropout, early_stopping l2 0.0001, '
                              'dropout 0.3 64 x 2 0.003 0.9300')
  assert ('early_stopping, batch_norm, mixup, cosine_lr dropout 0.1, mixup '
          '0.3 32 x 1 0.001' in rows['3'])
  assert 'weight_decay 0.001, input_noise 0.1, periodic_sigma 0.5' in rows['4']
  assert 'early_stopping, input_noise, periodic_embedding dropout' in (
      rows['4'])
  assert 'Trial 1 is the configuration as given' in text
  best = [row for row in page.split('<tr')[1:]
          if row.startswith(' class="best"')]
  assert len(best) == 1
  assert synthetic._text('<tr' + best[0]).startswith('2 ')  # pylint: disable=protected-access


def test_a_configured_taper_is_shown_as_its_layers(tmp_path):
  configured = _trial('00', 0.91, 0.93, hidden_units=[64, 32])
  page, _, _ = _page(tmp_path, [configured, *TRIALS[1:]])
  start = page.index('Regularization path: what it bought')
  rows = {r.split()[0]: r for r in _rows(page[start:page.index('<h2>Data')])
          if r.split()[0].isdigit()}
  assert ' 64-32 0.003 0.9100 ' in rows['1']
  assert ' 64 x 2 0.003 0.9300' in rows['2']


def test_a_lower_is_better_objective_chooses_the_smallest_score():
  task = tasks.get('regression')
  records = [dict(r, objective='val_rmse', score=s, train=s * 0.9,
                  gap=1 / 0.9 - 1) for r, s in zip(TRIALS, (3.0, 2.0, 2.5, 4.0))]
  metric = report.objective_metric(records, task)
  assert metric.name == 'rmse'
  config = config_lib.load_config(overrides=[
      'task=regression', 'data.label=tips', 'tuning.enabled=true'])
  trials = report.trials_of(records, config)
  assert report.chosen_trial(trials) == 1


def test_the_chosen_trial_is_within_the_gap_allowance_where_one_is():
  """The ranked best (trial 1, its gap past tuning.gap_fraction) is not the
  one the Tuner hands on; the table and figure mark the one it does."""
  records = [dict(TRIALS[0], ranked=0.95, excess=0.2),
             dict(TRIALS[1], ranked=0.93, excess=0.0)]
  trials = report.trials_of(records, config_lib.load_config())
  assert report.chosen_trial(trials) == 1
  assert [t.chosen for t in trials] == [False, True]


def test_a_change_within_eval_noise_is_not_chosen_and_the_table_says_so(
    tmp_path):
  """Trial 2 ranks best but beats the configured trial 1 by less than one
  standard error: trial 1 is the one marked, and the table shows each
  trial's difference from it."""
  records = [dict(TRIALS[0], configured=True, improvement=0.0,
                  improvement_se=0.0),
             dict(TRIALS[1], improvement=0.02, improvement_se=0.03)]
  page, _, _ = _page(tmp_path, records)
  text = synthetic._text(page)  # pylint: disable=protected-access
  # One other trial at change_error_rate 0.05: z = 1.64.
  assert 'by more than 1.64 standard errors of the paired difference' in text
  assert 'The chosen trial, 1, scored 0.9100' in text
  start = page.index('Regularization path: what it bought')
  table = page[start:page.index('<h2>Data')]
  assert 'vs trial 1' in table
  rows = {r.split()[0]: r for r in _rows(table) if r.split()[0].isdigit()}
  assert ' 0.0800 reference 4' in rows['1']
  assert ' +0.0200 ± 0.0300 4' in rows['2']
  (tmp_path / 'loose').mkdir()
  page, _, _ = _page(tmp_path / 'loose', records,
                     overrides=['tuning.change_error_rate=0.45'])
  assert 'The chosen trial, 2, scored 0.9300' in synthetic._text(page)  # pylint: disable=protected-access


def test_a_trial_past_the_allowance_only_by_noise_keeps_its_tier(
    tmp_path):
  """Trial 1's gap passes tuning.gap_fraction by its point estimate but not
  beyond eval noise (tuning.excess_beyond_noise 0): trial 2, within the
  allowance, must still beat it beyond noise, and the page says why."""
  records = [dict(TRIALS[0], configured=True, improvement=0.0,
                  improvement_se=0.0, ranked=0.90, excess=0.2,
                  excess_beyond_noise=0.0),
             dict(TRIALS[1], ranked=0.93, excess=0.0, improvement=0.02,
                  improvement_se=0.03)]
  page, _, _ = _page(tmp_path, records)
  text = synthetic._text(page)  # pylint: disable=protected-access
  assert 'The chosen trial, 1, scored 0.9100' in text
  assert ('Trial 1 passed it, or a limit, by the point estimate only, not '
          'beyond eval noise') in text
  (tmp_path / 'beyond').mkdir()
  records[0] = dict(records[0], excess_beyond_noise=0.1)
  page, _, _ = _page(tmp_path / 'beyond', records)
  text = synthetic._text(page)  # pylint: disable=protected-access
  assert 'The chosen trial, 2, scored 0.9300' in text
  assert 'not beyond eval noise' not in text


@pytest.mark.parametrize('excess, beyond_noise, named', [
    (0.7, 0.3, True),    # Past a limit by its point estimate only: tier 2 -> 1.
    (0.7, 0.0, True),    # Tier 2 -> 0.
    (0.4, 0.2, False),   # Past the allowance either way: tier 1 both.
    (0.7, 0.6, False)])  # Past a limit either way.
def test_the_page_names_each_trial_noise_moved_to_a_better_tier(
    excess, beyond_noise, named):
  records = [dict(TRIALS[0], excess=excess, excess_beyond_noise=beyond_noise),
             dict(TRIALS[1], excess=0.0, excess_beyond_noise=0.0)]
  assert report._within_by_noise(records, 0.5) == ('Trial 1' if named else '')  # pylint: disable=protected-access


def test_the_figure_keeps_many_combinations_readable(tmp_path):
  """More combinations than colours: the rest share grey and the figure
  still renders (the table names each trial's)."""
  rng = np.random.default_rng(0)
  records = [_trial(f'{i:02d}', float(s), float(s) + 0.05,
                    use_l2=bool(i & 1), use_weight_decay=bool(i & 2),
                    use_mixup=bool(i & 4), batch_norm=bool(i & 8),
                    input_noise=0.1 * bool(i & 16))
             for i, s in enumerate(rng.uniform(0.8, 0.95, 24))]
  task = tasks.get('binary')
  trials = report.trials_of(records, config_lib.load_config())
  name = report.trials_figure(trials, task.metrics['auc'], 0.03,
                              str(tmp_path))
  assert mpimg.imread(str(tmp_path / name)).shape[1] > 800


def test_bought_line_not_measured_names_the_key(tmp_path):
  page, _, _ = _page(tmp_path, TRIALS)
  text = synthetic._text(page)  # pylint: disable=protected-access
  assert ('What regularization bought: not measured in this run. '
          'report.compare_unregularized: true trains the same network') in text


def test_bought_line_compares_with_the_unregularized_network(tmp_path):
  unregularized = {'metric': 'auc', 'eval': 0.8, 'train': 0.999, 'gap': 0.199,
                   'epochs': 30, 'seconds': 9.0}
  page, training, _ = _page(tmp_path, TRIALS,
                            {'unregularized': unregularized})
  chosen = training['epochs'][1]  # Early stopping restored epoch 2.
  # Without the spaces _text puts where a tag ends before punctuation.
  text = re.sub(r' ([:;.])', r'\1', synthetic._text(page))  # pylint: disable=protected-access
  expected = (
      f"What regularization bought, on auc: the chosen model (l2, dropout; "
      f"epoch 2 of 3) eval {chosen['eval']['auc']:.4f}, train "
      f"{chosen['train']['auc']:.4f}, gap {chosen['gap']['auc']:+.4f}; the "
      'same 64-32 network without any regularization (all 30 epochs, the '
      'last one) eval 0.8000, train 0.9990, gap +0.1990. Eval auc '
      f"{chosen['eval']['auc'] - 0.8:+.4f} (better) with regularization. "
      'Both on the eval split')
  assert expected in text
  assert "so its eval figure is somewhat optimistic" in text


def test_an_untuned_run_says_so_and_a_missing_trials_json_too(tmp_path):
  config = config_lib.load_config()
  section = report.regularization_path_section(
      None, None, None, None, config, tasks.get('binary'), str(tmp_path))
  assert 'Not a tuned run' in section and 'no model was trained' in section
  section = report.regularization_path_section(
      None, 'COMPLETE', None, None, config, tasks.get('binary'),
      str(tmp_path))
  assert 'holds no trials.json' in section
  assert report.read_trials({}) is None


def test_the_factorys_tuner_runs_our_executor_and_only_the_trainer_reads_report():
  from components.trainer import tuning  # pylint: disable=g-import-not-at-top
  from pipeline import factory  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config(overrides=[
      'tuning.enabled=true', 'report.compare_unregularized=true'])
  pipeline = factory.create_pipeline(
      config, pipeline_root='/root', data_root='/data',
      data_file_pattern='data.csv', serving_dir='/serving')
  nodes = {node.id: node for node in pipeline.components}
  tuner = nodes[NodeIds.TUNER]
  assert tuner.executor_spec.executor_class is tuning.Executor

  def custom(node):
    return json.loads(node.exec_properties['custom_config'])['config']
  assert custom(nodes[NodeIds.TRAINER])['report'] == {
      'compare_unregularized': True}
  # Switching the report's settings re-runs the Trainer, not the search.
  assert 'report' not in custom(tuner)
  assert {k: v for k, v in custom(nodes[NodeIds.TRAINER]).items()
          if k != 'report'} == custom(tuner)
  untuned = factory.create_pipeline(
      config_lib.load_config(), pipeline_root='/root', data_root='/data',
      data_file_pattern='data.csv', serving_dir='/serving')
  assert NodeIds.TUNER not in {node.id for node in untuned.components}
