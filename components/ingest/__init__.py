"""Ingestion: CsvExampleGen with a vectorized Arrow executor (``component``)
and the Arrow/numpy CSV-to-tf.Example conversion it uses (``csv_fast``)."""
