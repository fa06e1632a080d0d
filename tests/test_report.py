"""The HTML run report, rendered from a real small run (tests/small_run.py).

The run's own numbers (gate.json, training.json, the statistics, the model's
weights) are read back independently here and must appear in the page; the
figures must exist beside it as real PNG images. The run is the small binary
one; the other tasks' pages are rendered from synthetic records in
test_task_outputs.py.
"""

import html
import os
import re

import numpy as np
import pytest
from matplotlib import image as mpimg

import small_run
from core import tasks
from pipeline import cli, local_runner, report
from pipeline.factory import NodeIds

pytestmark = pytest.mark.e2e

FIGURES = ('curves.png', 'gap.png', 'gate.png', 'weights.png', 'data.png')


@pytest.fixture(scope='module')
def crashed(tmp_path_factory):
  return small_run.crashed_and_resumed(tmp_path_factory)


@pytest.fixture(scope='module')
def page(crashed):
  """The report regenerated with ``python -m pipeline report``."""
  path = os.path.join(report.report_dir(crashed.result, crashed.config),
                      report.REPORT_HTML)
  # The run itself wrote it; remove it so that this is a real regeneration.
  assert os.path.exists(path)
  for name in os.listdir(os.path.dirname(path)):
    os.remove(os.path.join(os.path.dirname(path), name))
  assert cli.main(small_run.cli_args('report', crashed.overrides)) == 0
  with open(path, encoding='utf-8') as f:
    return path, f.read()


def _text(markup: str) -> str:
  """The page's visible text, one space between cells."""
  return html.unescape(' '.join(re.sub(r'<[^>]+>', ' ', markup).split()))


def _task(crashed):
  return tasks.get(crashed.result.gate['task'])


def test_figures_are_real_pngs_beside_the_page(page, crashed):
  path, markup = page
  task = _task(crashed)
  assert task.name == crashed.config.task == 'binary'
  for name in FIGURES + tuple(f'{d}.png' for d in task.diagnostics):
    assert f'<img src="{name}"' in markup, name
    figure = os.path.join(os.path.dirname(path), name)
    with open(figure, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n', name
    pixels = mpimg.imread(figure)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400, (name, pixels.shape)
    assert pixels[..., :3].std() > 0.05, name  # Not a blank canvas.


def test_verdict_and_every_gate_check_with_its_numbers(page, crashed):
  text = _text(page[1])
  result = crashed.result
  assert f'Blessed and pushed to {result.pushed_to}.' in text
  assert 'Decision: BLESSED' in text
  for check in result.gate['checks']:
    row = (f"{check['kind']} {check['metric']} {check['slice'] or 'all'} "
           f"{check['value']:.4f} {check['comparison']} "
           f"{check['threshold']:.4f} {'passed' if check['passed'] else 'FAILED'}")
    assert row in text, row
  test = result.gate['metrics']['held_out']['']
  task = _task(crashed)
  assert ('test (held out) ' + ' '.join(f'{test[m]:.4f}' for m in task.metrics)
          + f" {int(test['example_count'])}") in text
  # The trivial predictor the quality checks are measured against.
  assert (f"Trivial predictor on test: majority class "
          f"{test['majority_accuracy']:.4f}, prior log loss "
          f"{test['prior_log_loss']:.4f}.") in text
  assert (f"PR-AUC on test {test['pr_auc']:.4f} against a positive rate of "
          f"{test['mean_label']:.4f}") in text


def test_learning_curves_and_gap_per_epoch(page, crashed):
  text = _text(page[1])
  training = crashed.result.training
  task = _task(crashed)
  assert training['task'] == task.name
  assert training['epochs_run'] == 2
  for epoch in training['epochs']:
    row = ' '.join([str(epoch['epoch'])] + [
        f"{epoch[split][m]:.4f}" for m in task.metrics
        for split in ('train', 'eval')] + [
            local_runner.format_gap(metric, epoch['gap'][m])
            if metric.relative_gap else f"{epoch['gap'][m]:.4f}"
            for m, metric in task.metrics.items()])
    assert row in text, row
  es = training['early_stopping']
  assert (f"early stopping on {es['monitor']} restored epoch "
          f"{es['best_epoch']}") in text
  # The default calibration ran on the eval split and says what it chose.
  fitted = training['calibration']
  assert fitted['eval_loss_calibrated'] <= fitted['eval_loss']
  assert ('Calibration: temperature 1 kept' if fitted['temperature'] == 1.0
          else f"Calibration: temperature {fitted['temperature']:.3g} fitted "
          f"on the eval split (its log loss {fitted['eval_loss']:.4f} → "
          f"{fitted['eval_loss_calibrated']:.4f}") in text


def test_regularization_and_weights(page, crashed):
  text = _text(page[1])
  training = crashed.result.training
  reg = training['regularization']
  assert f"Techniques in force: {', '.join(reg['active'])}" in text
  assert f"l2 {reg['l2']:.6f}" in text and f"dropout {reg['dropout']:.6f}" in text
  # Weight averaging off: its settings are not listed as if in force.
  assert not reg.get('weight_averaging')
  assert 'ema_decay' not in text and 'swa_start' not in text
  weights = training['weights']
  assert f"kernel L2 norm {weights['kernel_l2_norm']:.4f}" in text
  assert f"near zero (|w| < 0.001) {weights['near_zero_fraction']:.2%}" in text
  # Per-layer norms from the saved kernels add up to the trainer's total.
  norms = [float(x) for x in re.findall(r'hidden_\d L2 norm (\d+\.\d+)', text)]
  norms += [float(x) for x in re.findall(r'probability L2 norm (\d+\.\d+)', text)]
  assert len(norms) == 3
  assert np.sqrt(sum(n ** 2 for n in norms)) == pytest.approx(
      weights['kernel_l2_norm'], rel=1e-3)


def test_data_summary(page, crashed):
  text = _text(page[1])
  assert f'total {small_run.SAMPLE_ROWS}' in text
  assert 'split rows label 0 label 1 note' in text
  # The label balance is Transform's label: on the test split it matches
  # the mean label TFMA measured for the gate.
  rate = crashed.result.gate['metrics']['held_out']['']['mean_label']
  match = re.search(r'test (\d+) (\d+) \((\d+\.\d+)%\) (\d+) \((\d+\.\d+)%\)',
                    text)
  assert match, text
  rows, negatives, positives = (int(match.group(i)) for i in (1, 2, 4))
  assert rows == crashed.result.gate['metrics']['held_out']['']['example_count']
  assert negatives + positives == rows
  assert positives / rows == pytest.approx(rate, abs=1e-9)
  assert 'Anomalies: none (ExampleValidator against the inferred schema).' in text


def test_components_table(page, crashed):
  text = _text(page[1])
  for node, state in crashed.result.nodes.items():
    assert re.search(rf'{node} {state} \d+\.\d', text), node


def test_report_of_the_killed_run(crashed):
  """The killed run's report says where it stopped and shows no model."""
  args = small_run.cli_args('report', crashed.overrides)
  assert cli.main(args + ['--run-id', crashed.killed_run_id]) == 0
  path = os.path.join(
      crashed.config.output.root, 'reports',
      crashed.killed_run_id.replace(':', '-'), report.REPORT_HTML)
  with open(path, encoding='utf-8') as f:
    text = _text(f.read())
  assert 'Run stopped at trainer (RUNNING): no model was pushed.' in text
  assert 'The gate did not run in this run.' in text
  assert f'total {small_run.SAMPLE_ROWS}' in text  # Upstream still reported.
  assert NodeIds.TRANSFORM in text
