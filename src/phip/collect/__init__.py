"""Pull collection (数据采集): read hospital business databases through read-only accounts and
feed every row through the one ingest pipeline.

Modules: ``guard`` (only a single SELECT reaches a source), ``mapping`` (the per-source YAML),
``source`` (read-only connections, masked URLs), ``transform`` (row → record), ``state``
(cursors, runs, leases on the platform store), ``runner`` (extract → map → pipeline → cursor),
``probe`` (table listing and mapping skeleton), ``scheduler`` (the worker loop),
``his_synth`` (a synthetic Chinese HIS for tests and benchmarks), ``cli`` (``phip collect``).
"""
