"""Command line: ``python -m pipeline {run,compile,report}``.

Exit codes (documented in the README; schedulers and CI gate on them):
  0  the run finished and the model was blessed and pushed
  1  the pipeline failed (a component raised)
  2  bad configuration or bad input data: nothing ran, nothing was written
  3  the run finished but the model was not blessed, so nothing was pushed
"""

import argparse
import logging
import os
import sys
import warnings
from typing import List, Optional

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_BLESSED = 3

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
      description='Checks the input file, then runs every component locally, '
      'printing each as it starts ("  > node ...") and finishes ("  < node '
      'done in N s"), then a summary table, and writes the HTML report to '
      '<output.root>/reports/<run id>/report.html. Outputs go below '
      'output.root: pipeline_root/, metadata.sqlite, serving_model/<version>/.',
      epilog='Exit codes: 0 pushed (or already served), 1 a component failed '
      '(e.g. blocking data anomalies), 2 bad config or input data (nothing '
      'ran, nothing written), 3 not blessed (nothing pushed).')
  _add_config_args(run)
  run.add_argument('--no-cache', action='store_true',
                   help='re-run every component even if its inputs are '
                   'unchanged')
  run.add_argument('--quiet', action='store_true',
                   help='hide TFX and TensorFlow logs; show progress only')

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


def _write_report(result, config) -> None:
  """Writes the HTML report; a failure here never changes the exit code."""
  from pipeline import report
  try:
    print(f'Report: {report.write_report(result, config)}')
  except Exception as e:  # pylint: disable=broad-except
    # The run's outcome (pushed or not) stands whatever the report does.
    print(f'warning: could not write the report: {type(e).__name__}: {e}',
          file=sys.stderr)


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


def _run(args) -> int:
  from pipeline import local_runner, preflight
  import absl.logging
  # The progress lines are INFO records of the absl logger, so it stays at
  # INFO; --quiet raises the level of the handlers that print everything else.
  absl.logging.set_verbosity(absl.logging.INFO)
  if args.quiet:
    absl.logging.get_absl_handler().setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
      handler.setLevel(logging.WARNING)
  config = _load(args)
  try:
    result = local_runner.run_local(config, enable_cache=not args.no_cache)
  except preflight.InputDataError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_BAD_INPUT
  except Exception as e:  # pylint: disable=broad-except
    # LocalDagRunner re-raises whatever a component raised (a blocking data
    # anomaly, a failed smoke test, ...): say which, and report what ran.
    print(f'error: the pipeline failed: {type(e).__name__}: {e}',
          file=sys.stderr)
    result = _failed_result(config)
    if result is not None:
      print(local_runner.format_summary(result))
      _write_report(result, config)
    return EXIT_FAILED
  print(local_runner.format_summary(result))
  _write_report(result, config)
  if not result.blessed:
    print('Model NOT blessed: nothing was pushed (exit code 3).',
          file=sys.stderr)
    return EXIT_NOT_BLESSED
  return EXIT_OK


def _compile(args) -> int:
  from kubeflow import runner
  config = _load(args)
  path = runner.compile_pipeline(
      config, output_path=args.output, image=args.image,
      pipeline_root=args.pipeline_root, data_root=args.data_root,
      serving_dir=args.serving_dir)
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


def main(argv: Optional[List[str]] = None) -> int:
  from core import config as config_lib
  args = build_parser().parse_args(argv)
  handlers = {'run': _run, 'compile': _compile, 'report': _report}
  try:
    return handlers[args.command](args)
  except config_lib.ConfigError as e:
    print(f'configuration error: {e}', file=sys.stderr)
    return EXIT_BAD_INPUT
