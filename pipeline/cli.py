"""Command line: ``python -m pipeline {run,init,runs,compile,report}``.

Exit codes (documented in the README; schedulers and CI gate on them):
  0  the run finished and the model was blessed and pushed
  1  the pipeline failed (a component raised)
  2  bad configuration or bad input data: nothing ran, nothing was written
  3  the run finished but the model was not blessed, so nothing was pushed
"""

import argparse
import os
import sys
import time
import warnings
from typing import List, Optional

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_BLESSED = 3
RUN_LOG = 'run.log'  # In the run's report folder.
RESOLVED_CONFIG = 'config.yaml'  # Likewise.

# One Keras everywhere (tf_keras, as the TFX image): before TensorFlow loads.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# google-cloud packages warn about Python 3.10 on import, dozens of times.
warnings.filterwarnings('ignore', category=FutureWarning)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      '--config', metavar='FILE',
      help='YAML configuration over the defaults (core/configs/'
      'default.yaml); see docs/configuration.md for every key')
  parser.add_argument(
      '--set', dest='overrides', action='append', default=[],
      metavar='KEY=VALUE',
      help='override one value with a dotted key, e.g. --set '
      'regularization.l2=1e-4 --set model.hidden_units=[128,64]; repeatable, '
      'applied after --config. Values are YAML: "regularization=none" turns '
      'every technique off')


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m pipeline',
      description='A TFX pipeline that trains regularized Keras models and '
      'pushes only models that generalize.',
      epilog='Exit codes: 0 pushed, 1 pipeline failed, 2 bad config or input, '
      '3 not blessed (nothing pushed).',
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)

  run = sub.add_parser(
      'run', help='run the pipeline locally (LocalDagRunner, Beam '
      'DirectRunner, SQLite metadata)',
      description='Checks the configuration and every row of the input file '
      '(in about a second, before anything heavy loads), then runs every '
      'component locally, printing each as it starts ("  > node ...") and '
      'finishes ("  < node done in N s") and the Trainer\'s epochs, then a '
      'summary table; writes the HTML report (report.html) and the full log '
      '(run.log: TFX, Beam, TensorFlow) to <output.root>/reports/<run id>/. '
      'Outputs go below output.root: pipeline_root/, '
      'metadata.sqlite, serving_model/<version>/.',
      epilog='Exit codes: 0 pushed (or already served), 1 a component failed '
      '(e.g. blocking data anomalies), 2 bad config or input data (nothing '
      'ran, nothing written), 3 not blessed (nothing pushed).')
  _add_config_args(run)
  run.add_argument('--no-cache', action='store_true',
                   help='re-run every component even if its inputs are '
                   'unchanged')
  noise = run.add_mutually_exclusive_group()
  noise.add_argument('--verbose', action='store_true',
                     help='stream TFX, Beam and TensorFlow logs to the '
                     'terminal instead of the run log file')
  noise.add_argument('--quiet', action='store_true',
                     help='progress and summary only, logs to the run log '
                     'file (the default; kept for scripts)')

  comp = sub.add_parser('compile', help='compile for Kubeflow Pipelines '
                        '(KubeflowV2DagRunner) into a pipeline spec JSON')
  _add_config_args(comp)
  comp.add_argument('--output', default='build/pipeline.json',
                    help='where to write the spec (default: %(default)s)')
  comp.add_argument('--image', default=None,
                    help='container image the tasks run in')
  comp.add_argument('--pipeline-root', default=None,
                    help='default pipeline root, e.g. gs://bucket/root')
  comp.add_argument('--data-root', default=None,
                    help='default folder ExampleGen reads, e.g. gs://bucket/data')
  comp.add_argument('--serving-dir', default=None,
                    help='default serving destination, e.g. gs://bucket/serving')

  init = sub.add_parser(
      'init', help='write a starter config for a data file: the task guessed '
      'from the label, the features inferred, the default regularization '
      'and gate',
      description='Reads DATA whole, guesses the task from the label '
      'column\'s values (binary, multiclass or regression), infers the '
      'features and writes a commented YAML that `run --config` accepts as '
      'it is; edit it first if you like.')
  init.add_argument('data', metavar='DATA',
                    help='what data.path takes: a CSV, Parquet or TFRecord '
                    'file, a folder or a glob')
  init.add_argument('--label', required=True, metavar='COLUMN',
                    help='the column to predict')
  init.add_argument('--output', default=None, metavar='FILE',
                    help='where to write the config (default: '
                    '<pipeline name>.yaml in the current directory)')
  init.add_argument('--force', action='store_true',
                    help='overwrite FILE if it exists')

  runs = sub.add_parser(
      'runs', help='list the runs in the metadata store, newest first',
      description='Every run in <output.root>/metadata.sqlite, newest first: '
      'run id, when, the data, blessed or not and why, the held-out metrics '
      'with their gaps, the pushed version. Reads the metadata store only.')
  _add_config_args(runs)
  runs.add_argument('--json', action='store_true',
                    help='print JSON (a list of runs) for scripts')

  rep = sub.add_parser('report', help='(re)generate the HTML run report from '
                       'a pipeline root and its metadata store, into '
                       '<output.root>/reports/<run id>/report.html')
  _add_config_args(rep)
  rep.add_argument('--run-id', default=None,
                   help='which pipeline run, by the id the run summary prints '
                   '(default: the latest run in the metadata store)')
  return parser


def _load(args):
  from core import config as config_lib
  return config_lib.load_config(args.config, args.overrides)


def _write_report(result, config) -> str:
  """Writes the HTML report; returns the line that says where (or why not).
  A failure here never changes the exit code."""
  from pipeline import report
  try:
    return f'Report: {report.write_report(result, config)}'
  except Exception as e:  # pylint: disable=broad-except
    # The run's outcome (pushed or not) stands whatever the report does.
    return f'warning: could not write the report: {type(e).__name__}: {e}'



def _failed_result(config):
  """What a failed run did, when it got as far as the metadata store."""
  from pipeline import local_runner, metadata
  where = local_runner.paths(config)
  if not os.path.exists(where['metadata_path']):
    return None
  if not metadata.run_ids(metadata.connect_sqlite(where['metadata_path'])):
    return None
  return local_runner.read_result(where['metadata_path'],
                                  where['pipeline_root'])


def _checked(args):
  """The configuration and the pre-run check of its data: both before
  anything heavy is imported, so that a mistake is reported in about a
  second. Raises ConfigError or InputDataError."""
  from pipeline import preflight
  summary = preflight.check_csv(_load(args))
  if summary.inferred is not None:
    from pipeline import infer
    print('Features inferred from the data (data.features: auto); to edit '
          'them, copy into your config:\n'
          + infer.format_features(summary.inferred), file=sys.stderr)
  if summary.rows_dropped:
    print('Rows without a label, not ingested (data.label.drop_missing): '
          f'{summary.rows_dropped} (the first: {summary.first_dropped})',
          file=sys.stderr)
  for warning in summary.warnings:
    print(warning, file=sys.stderr)
  return summary


def _log_path(config) -> str:
  """Where a quiet run writes TFX's, Beam's and TensorFlow's logs until its
  run id is known."""
  stamp = time.strftime('%Y%m%dT%H%M%S')
  return os.path.abspath(os.path.join(config.output.root, 'reports',
                                      f'.run-{stamp}-{os.getpid()}.log'))


def _file_log(log_path: Optional[str], config, run_id: Optional[str]
              ) -> Optional[str]:
  """Moves the run's log into its report folder; returns where it is."""
  if log_path is None or not os.path.exists(log_path):
    return None
  if run_id is None:
    return log_path
  from pipeline import local_runner
  folder = local_runner.report_dir(config, run_id)
  os.makedirs(folder, exist_ok=True)
  target = os.path.join(folder, RUN_LOG)
  os.replace(log_path, target)
  return target


def _write_resolved_config(config, run_id: str, inferred: bool) -> None:
  """The configuration the run used, defaults and inferred features filled
  in, as ``config.yaml`` in its report folder: a config to copy and edit."""
  import yaml
  from pipeline import local_runner
  folder = local_runner.report_dir(config, run_id)
  os.makedirs(folder, exist_ok=True)
  head = ('# The configuration of run ' + run_id + ', every default filled in'
          + ('; data.features were inferred from the data' if inferred else '')
          + '.\n# Runs with `python -m pipeline run --config <this file>`.\n')
  with open(os.path.join(folder, RESOLVED_CONFIG), 'w', encoding='utf-8') as f:
    f.write(head + yaml.safe_dump(config.to_dict(), sort_keys=False))


def _run(args) -> int:
  from pipeline import console, preflight
  try:
    summary = _checked(args)
  except preflight.InputDataError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_BAD_INPUT
  config = summary.config
  log_path = None if args.verbose else _log_path(config)
  error = report = None
  # TensorFlow's and TFX's imports log too: they happen inside the capture.
  with console.captured(log_path) as terminal:
    import absl.logging  # pylint: disable=g-import-not-at-top
    from pipeline import local_runner  # pylint: disable=g-import-not-at-top
    # The progress lines are INFO records of the absl logger.
    absl.logging.set_verbosity(absl.logging.INFO)
    try:
      result = local_runner.run_local(
          config, enable_cache=not args.no_cache, summary=summary,
          progress_stream=terminal)
    except Exception as e:  # pylint: disable=broad-except
      # LocalDagRunner re-raises whatever a component raised (a blocking
      # data anomaly, a failed smoke test, ...): say which, report what ran.
      error = f'error: the pipeline failed: {type(e).__name__}: {e}'
      result = _failed_result(config)
    if result is not None:
      _write_resolved_config(config, result.run_id,
                             summary.inferred is not None)
      report = _write_report(result, config)
  log = _file_log(log_path, config, result and result.run_id)
  if error:
    print(error, file=sys.stderr)
    if log:
      print(f'Full log: {log}', file=sys.stderr)
  if result is not None:
    print(local_runner.format_summary(result, nodes=bool(args.verbose or error)))
    print(report, file=sys.stderr if report.startswith('warning') else
          sys.stdout)
  if log and not error:
    print(f'Log: {log}')
  if error:
    return EXIT_FAILED
  if not result.blessed:
    print('Model NOT blessed: nothing was pushed (exit code 3).',
          file=sys.stderr)
    return EXIT_NOT_BLESSED
  return EXIT_OK


def _compile(args) -> int:
  config = _load(args)
  if config.data.features.auto:
    # The compiled spec carries the feature lists as constants: infer them
    # here, where the data is readable, or ask for them.
    if '://' in (config.data.path or ''):
      from core import config as config_lib
      raise config_lib.ConfigError(
          f'data.features: auto reads the data to infer the features, and '
          f'{config.data.path} is not readable here; list data.features (or '
          'run `python -m pipeline init` on a local copy and compile that)')
    from pipeline import preflight
    try:
      config = _checked(args).config
    except preflight.InputDataError as e:
      print(f'error: {e}', file=sys.stderr)
      return EXIT_BAD_INPUT
  # TensorFlow's and TFX's import-time logs go to a file kept only when the
  # compilation fails, whose error then says where it is.
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  from pipeline import console  # pylint: disable=g-import-not-at-top
  log_path = os.path.join(tempfile.mkdtemp(prefix='pipeline-compile-'),
                          'compile.log')
  try:
    with console.captured(log_path):
      from kubeflow import runner  # pylint: disable=g-import-not-at-top
      path = runner.compile_pipeline(
          config, output_path=args.output, image=args.image,
          pipeline_root=args.pipeline_root, data_root=args.data_root,
          serving_dir=args.serving_dir)
  except Exception:
    print(f'Full log: {log_path}', file=sys.stderr)
    raise
  shutil.rmtree(os.path.dirname(log_path), ignore_errors=True)
  print(f'Pipeline spec written to {path}')
  return EXIT_OK


def _report(args) -> int:
  from pipeline import local_runner, metadata, report
  config = _load(args)
  where = local_runner.paths(config)
  if not os.path.exists(where['metadata_path']):
    print(f"error: no metadata store at {where['metadata_path']}; run the "
          'pipeline first, or point --config/--set output.root at its outputs',
          file=sys.stderr)
    return EXIT_BAD_INPUT
  ids = metadata.run_ids(metadata.connect_sqlite(where['metadata_path']))
  if not ids or (args.run_id and args.run_id not in ids):
    print(f"error: no run {args.run_id or ''} in {where['metadata_path']}; "
          f'runs: {ids}', file=sys.stderr)
    return EXIT_BAD_INPUT
  result = local_runner.read_result(where['metadata_path'],
                                    where['pipeline_root'], run_id=args.run_id)
  print(f'Report: {report.write_report(result, config)}')
  return EXIT_OK


def _init(args) -> int:
  from pipeline import starter
  try:
    path = starter.main(args.data, args.label, output=args.output,
                        force=args.force)
  except starter.InitError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_BAD_INPUT
  print(f'Config written to {path}; run it with:\n'
        f'  python -m pipeline run --config {path}')
  return EXIT_OK


def _runs(args) -> int:
  from pipeline import history
  config = _load(args)
  store = os.path.abspath(config.output.resolve(config.output.metadata_path))
  try:
    records = history.list_runs(store)
  except FileNotFoundError as e:
    print(f'error: {e}; run the pipeline first, or point --config/--set '
          'output.root at its outputs', file=sys.stderr)
    return EXIT_BAD_INPUT
  print(history.to_json(records) if args.json
        else history.format_runs(records))
  return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
  from core import config as config_lib
  args = build_parser().parse_args(argv)
  handlers = {'run': _run, 'compile': _compile, 'report': _report,
              'init': _init, 'runs': _runs}
  try:
    return handlers[args.command](args)
  except config_lib.ConfigError as e:
    print(f'configuration error: {e}', file=sys.stderr)
    return EXIT_BAD_INPUT
