"""The command line, without running TFX: help, exit codes, progress, summary.

Each bad configuration or input must exit with code 2, say what is wrong on
stderr, and leave ``output.root`` untouched.
"""

import argparse
import io
import logging
import os
import dataclasses
import re
import subprocess
import sys
from importlib import metadata as importlib_metadata

import pytest

from components.gate import decision
from pipeline import cli, console, local_runner
from core import config as config_lib
from core import tasks


def _subparsers(parser):
  action = next(a for a in parser._actions  # pylint: disable=protected-access
                if isinstance(a, argparse._SubParsersAction))  # pylint: disable=protected-access
  return action.choices


def test_every_option_of_every_command_is_explained():
  parser = cli.build_parser()
  commands = _subparsers(parser)
  assert set(commands) == {'run', 'init', 'runs', 'compile', 'report'}
  top = parser.format_help()
  for name in commands:
    assert re.search(rf'^\s+{name}\s+\S', top, re.M), name  # With its help.
  assert 'Exit codes: 0 pushed, 1 pipeline failed, 2 bad config' in top
  for name, sub in commands.items():
    text = sub.format_help()
    for action in sub._actions:  # pylint: disable=protected-access
      assert action.help and action.help != argparse.SUPPRESS, (
          name, action.option_strings)
      for option in action.option_strings:
        assert option in text, (name, option)
    if name != 'init':  # Its input is the data file, not a config.
      assert '--config FILE' in text and '--set KEY=VALUE' in text
  run_help = ' '.join(commands['run'].format_help().split())  # Unwrapped.
  for words in ('> node ...', '< node done in N s', 'summary table',
                'report.html', '2 bad config or input data'):
    assert words in run_help, words


def test_python_dash_m_and_the_console_script():
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1')
  done = subprocess.run([sys.executable, '-m', 'pipeline', 'run', '--help'],
                        capture_output=True, text=True, env=env, timeout=300,
                        check=False)
  assert done.returncode == 0, done.stderr
  assert '--set KEY=VALUE' in done.stdout and '--no-cache' in done.stdout
  scripts = {e.name: e.value for e in
             importlib_metadata.entry_points(group='console_scripts')}
  assert scripts.get('tfx-generalize') == 'pipeline.cli:main'
  script = os.path.join(os.path.dirname(sys.executable), 'tfx-generalize')
  done = subprocess.run([script, 'report', '--help'], capture_output=True,
                        text=True, env=env, timeout=300, check=False)
  assert done.returncode == 0, done.stderr
  assert '--run-id' in done.stdout


@pytest.mark.parametrize('command', ['run', 'compile', 'report'])
@pytest.mark.parametrize('args, message', [
    (['--set', 'regularization.l3=1e-4'], "unknown technique 'l3'"),
    (['--set', 'model.epochs=many'], 'model.epochs: expected an integer'),
    (['--set', 'regularization.dropout=1.5'], 'rate must be in [0, 1)'),
    (['--set', 'model.epochs'], 'expected section.key=value'),
    (['--config', '{missing}'], 'does not exist'),
    (['--config', '{bad_yaml}'], 'not valid YAML'),
    (['--config', '{list_yaml}'], 'expected a mapping at the top level'),
])
def test_bad_configuration_exits_2_and_writes_nothing(
    tmp_path, capsys, command, args, message):
  (tmp_path / 'bad.yaml').write_text('model: {epochs: [\n')
  (tmp_path / 'list.yaml').write_text('- 1\n- 2\n')
  args = [a.format(missing=tmp_path / 'missing.yaml',
                   bad_yaml=tmp_path / 'bad.yaml',
                   list_yaml=tmp_path / 'list.yaml') for a in args]
  out = tmp_path / 'out'
  code = cli.main([command, '--set', f'output.root={out}', *args])
  assert code == cli.EXIT_BAD_INPUT
  err = capsys.readouterr().err
  assert err.startswith('configuration error: ') and message in err, err
  assert not out.exists()


def test_unknown_option_exits_2(capsys):
  with pytest.raises(SystemExit) as info:
    cli.main(['run', '--epochs', '3'])
  assert info.value.code == 2
  assert 'unrecognized arguments: --epochs' in capsys.readouterr().err


def test_bad_input_file_exits_2_and_writes_nothing(tmp_path, capsys):
  out = tmp_path / 'out'
  data = tmp_path / 'data.csv'
  data.write_text('fare,tips\n')
  code = cli.main(['run', '--set', f'data.path={data}',
                   '--set', f'output.root={out}'])
  assert code == cli.EXIT_BAD_INPUT
  assert f'error: {data}: only a header, no data rows' in capsys.readouterr().err
  assert not out.exists()


def test_report_without_a_run_exits_2(tmp_path, capsys):
  code = cli.main(['report', '--set', f'output.root={tmp_path / "out"}'])
  assert code == cli.EXIT_BAD_INPUT
  assert 'no metadata store' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


def test_progress_shows_each_component_with_its_time():
  stream = io.StringIO()
  absl_logger = logging.getLogger('absl')
  level = absl_logger.level
  absl_logger.setLevel(logging.INFO)
  try:
    with console.progress(stream):  # pylint: disable=protected-access
      # The messages LocalDagRunner logs around each component.
      absl_logger.info('Component %s is running.', 'example_gen')
      absl_logger.info('Component %s is finished.', 'example_gen')
      absl_logger.info('Component %s is running.', 'trainer')
      absl_logger.info('Something else entirely.')
    absl_logger.info('Component %s is finished.', 'trainer')  # Detached.
  finally:
    absl_logger.setLevel(level)
  lines = stream.getvalue().splitlines()
  assert lines[0] == '  > example_gen ...'
  assert re.fullmatch(r'  < example_gen done in \d+\.\d s', lines[1])
  assert lines[2:] == ['  > trainer ...']


def _result(blessed_gap: float) -> local_runner.RunResult:
  metrics = {'accuracy': 0.8, 'auc': 0.85, 'pr_auc': 0.6, 'log_loss': 0.4,
             'example_count': 300.0, 'mean_label': 0.25,
             'majority_accuracy': 0.75, 'prior_log_loss': 0.56}
  train = dict(metrics, accuracy=0.8 + blessed_gap)
  gate = decision.decide(tasks.get('binary'), {'': metrics}, {'': train}, None,
                         # Hand-made metrics have no bootstrap replicates.
                         config_lib.parse_gate({'bootstrap_replicates': 0},
                                               'binary')).to_dict()
  epoch = {'epoch': 1, 'train': train, 'eval': metrics, 'gap': {}}
  return local_runner.RunResult(
      run_id='2026-01-01T00:00:00', nodes={'example_gen': 'CACHED',
                                           'trainer': 'COMPLETE'},
      seconds={'example_gen': 0.0, 'trainer': 12.34}, blessed=gate['blessed'],
      gate=gate, training={'epochs': [epoch], 'epochs_run': 1,
                           'regularization': {'active': ['l2']}},
      pushed_to='/serving/7' if gate['blessed'] else None,
      pipeline_root='/root', metadata_path='/m.sqlite', wall_seconds=42)


def test_summary_table():
  text = local_runner.format_summary(_result(0.0))
  assert 'Run 2026-01-01T00:00:00: 42 s wall' in text
  assert re.search(r'example_gen\s+CACHED\s+0\.0', text)
  assert re.search(r'trainer\s+COMPLETE\s+12\.3', text)
  assert re.search(r'accuracy\s+0\.8000\s+0\.8000\s+0\.8000\s+\+0\.0000', text)
  assert 'Blessed: yes' in text and 'Pushed: /serving/7' in text
  failed = local_runner.format_summary(_result(0.1))
  assert 'FAIL gap      accuracy: 0.1000 <= 0.0300' in failed
  assert 'Blessed: NO (failed: gap)' in failed
  assert 'Pushed: nothing' in failed
  # A cached run reuses the push of the run it repeats: nothing is new.
  cached = _result(0.0)
  cached = dataclasses.replace(
      cached, nodes={**cached.nodes, 'pusher': 'CACHED'},
      seconds={**cached.seconds, 'pusher': 0.0})
  assert ('Pushed: nothing new; already served at /serving/7'
          in local_runner.format_summary(cached))


def test_tfx_component_packages_import_only_what_is_used():
  # tfx.components, tfx.v1.components, tfx.v1.extensions and
  # tfx.v1.orchestration.experimental resolve their names on first use
  # (pipeline/__init__.py); Beam's pickler, which reads every module's
  # __dict__, must not load them either.
  code = '\n'.join([
      'import sys',
      'import pipeline.local_runner',
      'from apache_beam.internal import pickler',
      'pickler.loads(pickler.dumps(lambda x: x))',
      "unused = ('keras_tuner', 'kubernetes', 'google.cloud.aiplatform',",
      "          'tfx.components.evaluator.component',",
      "          'tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner')",
      'print(sorted(m for m in unused if m in sys.modules))',
      'from tfx import v1 as tfx',
      'print(tfx.components.Tuner.__name__, tfx.components.FnArgs.__name__,',
      "      'Evaluator' in dir(tfx.components),",
      '      tfx.orchestration.experimental.KubeflowV2DagRunner.__name__,',
      '      tfx.extensions.google_cloud_ai_platform.Trainer.__name__)',
      'names = {}',
      "exec('from tfx.components import *', names)",
      "print(sorted(n for n in names if not n.startswith('__')) == sorted(",
      '    __import__("tfx.components").components.__all__))',
      'try:',
      '  tfx.components.NoSuchComponent',
      'except AttributeError as e:',
      '  print(type(e).__name__)',
  ])
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2')
  out = subprocess.run([sys.executable, '-c', code], check=True, env=env,
                       capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(
                           os.path.abspath(__file__)))).stdout.splitlines()
  assert out == ['[]', 'Tuner FnArgs True KubeflowV2DagRunner Trainer',
                 'True', 'AttributeError']


def test_only_packages_that_just_reexport_are_deferred():
  import pipeline  # pylint: disable=g-import-not-at-top
  names, _ = pipeline._reexports(  # pylint: disable=protected-access
      '"""Doc."""\nfrom a.b import C as D\ntry:\n  from e import F\n'
      'except ImportError:\n  pass\n__all__ = ["D", "F"]\n')
  assert names == {'D': ('a.b', 'C', False), 'F': ('e', 'F', True)}
  # Anything else (code, star imports, relative imports) runs unchanged.
  for source in ('import os\n', 'from a import *\n', 'from . import b\n',
                 'from a import b\nX = 1\n'):
    assert pipeline._reexports(source) is None  # pylint: disable=protected-access
