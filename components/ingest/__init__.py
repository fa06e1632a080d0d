"""Ingestion: the input formats (``formats``: CSV, Parquet, TFRecord, one
object each), their ExampleGens with in-process executors (``component``)
and the Arrow/numpy conversions they use (``csv_fast``, ``parquet_fast``,
``tfrecord_fast``)."""
