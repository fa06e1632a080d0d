"""Bad inputs, as a user meets them: through ``python -m pipeline run``.

Every case ends in a clear error or in an anomaly report that stops the run
before training, and never in a pushed model:

* file-level problems (16 cases) are caught by the preflight check: exit code
  2, one ``error:`` line naming the file and the column, and nothing at all
  written below ``output.root``;
* schema drift against a curated schema (``data.schema_path``, so
  ImportSchemaGen) is only visible to TFDV: a real LocalDagRunner run whose
  AnomalyGate fails, exit code 1, the anomaly in the message and the report,
  and in the metadata store no Transform, no Trainer, nothing pushed.

The README's "Bad input data" table lists the same cases.
"""

import contextlib
import csv
import datetime
import glob
import gzip
import io
import os

import pytest

import small_run
from pipeline import cli, metadata
from pipeline.factory import NodeIds

HEADER = 'fare,trip_miles,payment_type,tips\n'
SMALL = ['model.batch_size=4', 'data.features.numeric=[fare, trip_miles]',
         'data.features.log_scale=[fare]',
         'data.features.categorical=[payment_type]']


def _rows(n):
  return ''.join(f'{10 + i % 5},{i % 7},{"Cash" if i % 2 else "Card"},'
                 f'{5 * (i % 2)}\n' for i in range(n))


# (case, file content: str, bytes, None = no file, or 'DIR', extra
# overrides, what the user sees after "error: <path>: ")
CASES = [
    ('missing file', None, (), 'no such file (data.path)'),
    ('a directory', 'DIR', (), 'is a directory'),
    ('empty file', '', (), 'the file is empty'),
    ('header only', HEADER, (), 'only a header, no data rows'),
    ('missing label column', 'fare,trip_miles,payment_type\n'
     + '1,2,Cash\n' * 20, (),
     "no column 'tips': expected column 'tips', which label 'big_tipper' is "
     'derived from'),
    ('label with unexpected values', 'fare,trip_miles,payment_type,big_tipper\n'
     + '10,1,Cash,2\n' * 20, ('data.label=big_tipper',),
     "column 'big_tipper' holds '2', expected 0 or 1"),
    ('label source holding text', HEADER + '1,2,Cash,lots\n' * 20, (),
     "cannot read label 'big_tipper' for task binary: column 'tips' holds 'lots'"),
    ('constant label', HEADER + '10,1,Cash,0\n' * 20, (),
     "label 'big_tipper' is constant (0)"),
    # 'nan' is a missing value by default (data.missing_values); with
    # stock's rule it is a float NaN.
    ('all-NaN column', HEADER + '10,nan,Cash,1\n10,nan,Card,5\n' * 10,
     ("data.missing_values=['']",), "numeric column 'trip_miles' is all NaN"),
    ('column without values', HEADER + '10,,Cash,1\n10,,Card,5\n' * 10, (),
     "numeric column 'trip_miles' has no values"),
    ('numeric column holding text', HEADER + '10,far,Cash,1\n10,3,Card,5\n' * 10,
     (), "numeric column 'trip_miles' holds 'far'"),
    ('duplicate column names', 'fare,fare,payment_type,tips\n'
     + '10,1,Cash,1\n' * 20, (), "duplicate column names ['fare']"),
    ('names a saved model reads as one', 'fare,trip_miles,trip-miles,'
     'payment_type,tips\n' + '10,1,1,Cash,1\n10,2,2,Card,5\n' * 10, (),
     "'trip_miles', 'trip-miles' all read as 'trip_miles'"),
    ('non-UTF-8 bytes', HEADER.encode() + b'10,1,Caf\xe9,1\n' * 10, (),
     'not UTF-8 text'),
    ('fewer rows than one batch', HEADER + _rows(3), (),
     '3 data rows, fewer than one batch'),
    ('missing feature column', 'fare,payment_type,tips\n'
     + '10,Cash,1\n10,Card,5\n' * 10, (),
     "feature columns ['trip_miles'] not in the header"),
    ('ragged row', HEADER + '10,1,Cash\n' * 10, (),
     'data row 1 has 3 fields, the header has 4'),
    ('a quote left open', HEADER + _rows(20) + '10,"open,Cash,1\n'
     + _rows(20), (), 'data row 21 has 2 fields, the header has 4; its field '
     "2 is quoted and runs on over the next lines ('open,Cash,1\\n10,0,Card,"),
    ('gzip under a .csv name', gzip.compress((HEADER + _rows(20)).encode()),
     (), 'the file is gzip-compressed but its name does not end in .gz'),
    ('Parquet under a .csv name', b'PAR1\x15\x04' + bytes(64) + b'PAR1', (),
     'the file is Parquet, not CSV; name it .parquet'),
    ("pandas' index column", ',' + HEADER + ''.join(
        f'{i},{row}\n' for i, row in enumerate(_rows(20).splitlines())), (),
     "header columns [1] have no name (column names are read from the first "
     "line); an unnamed first column is the row index pandas' to_csv writes "
     'by default: write the file with index=False'),
]


@pytest.mark.parametrize('content, overrides, message',
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_file_exits_2_and_writes_nothing(tmp_path, capsys, content,
                                             overrides, message):
  path = tmp_path / 'data.csv'
  if content == 'DIR':
    path.mkdir()
  elif isinstance(content, bytes):
    path.write_bytes(content)
  elif content is not None:
    path.write_text(content)
  out = tmp_path / 'out'
  code = cli.main(small_run.cli_args('run', [
      f'data.path={path}', f'output.root={out}', *SMALL, *overrides]))
  assert code == cli.EXIT_BAD_INPUT
  err = capsys.readouterr().err
  assert err.startswith(f'error: {path}') and message in err, err
  assert not out.exists()  # No metadata, no pipeline root, no model.


# --------------------------------------------------------------------------
# Schema drift: a real run.


def _drifted_copy(source, target):
  """The same rows, but ``trip_start_timestamp`` now arrives as text (an
  upstream export changed format); the column feeds no feature, so only the
  curated schema can notice."""
  with open(source, newline='') as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    stamp = datetime.datetime.fromtimestamp(int(row['trip_start_timestamp']),
                                            datetime.timezone.utc)
    row['trip_start_timestamp'] = stamp.strftime('%Y-%m-%d %H:%M:%S')
  with open(target, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


@pytest.fixture(scope='module')
def drift(tmp_path_factory):
  shared = small_run.crashed_and_resumed(tmp_path_factory)
  # The curated schema: what SchemaGen inferred on the good data, as a user
  # would review and commit it.
  store = metadata.connect_sqlite(shared.result.metadata_path)
  schema_uri = metadata.node_runs(store, shared.killed_run_id)[
      NodeIds.SCHEMA_GEN].outputs['schema'][0].uri
  schema = os.path.join(schema_uri, 'schema.pbtxt')
  root = tmp_path_factory.mktemp('drift')
  data = root / 'taxi_drifted.csv'
  _drifted_copy(os.path.join(shared.root, 'taxi.csv'), data)
  overrides = small_run.settings(data, root / 'out',
                                 [f'data.schema_path={schema}'])
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    code = cli.main(small_run.cli_args('run', overrides) + ['--quiet'])
  return {'code': code, 'stderr': err.getvalue(), 'out': root / 'out',
          'schema': schema}


@pytest.mark.e2e
def test_schema_drift_stops_the_run_before_training(drift):
  assert drift['code'] == cli.EXIT_FAILED, drift['stderr'][-3000:]
  assert 'error: the pipeline failed: DataAnomalyError' in drift['stderr']
  assert "column 'trip_start_timestamp'" in drift['stderr']
  store = metadata.connect_sqlite(str(drift['out'] / 'metadata.sqlite'))
  runs = metadata.node_runs(store)
  assert runs[NodeIds.ANOMALY_GATE].state == 'FAILED'
  # The curated schema was imported, not inferred from the drifted data.
  schema_gen = runs[NodeIds.SCHEMA_GEN].execution
  assert store.get_execution_types_by_id(
      [schema_gen.type_id])[0].name.endswith('ImportSchemaGen')
  for node in (NodeIds.TRANSFORM, NodeIds.TRAINER, NodeIds.GATE,
               NodeIds.PUSHER):
    assert node not in runs, runs
  assert not any('Trainer' in t.name for t in store.get_execution_types())
  assert not (drift['out'] / 'serving_model').exists()


@pytest.mark.e2e
def test_schema_drift_report_shows_the_anomaly(drift):
  pages = glob.glob(str(drift['out'] / 'reports' / '*' / 'report.html'))
  assert len(pages) == 1
  with open(pages[0], encoding='utf-8') as f:
    page = f.read()
  assert 'Run stopped at anomaly_gate (FAILED)' in page
  assert 'BLOCKING' in page and 'trip_start_timestamp' in page
  assert 'Anomalies found by ExampleValidator' in page
