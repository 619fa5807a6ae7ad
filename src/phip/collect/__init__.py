"""Pull collection (数据采集): read hospital business databases through read-only accounts and
feed every row through the one ingest pipeline.

Modules: ``guard`` (only a single SELECT reaches a source), ``mapping`` (the per-source YAML),
``source`` (read-only connections, masked URLs), ``transform`` (row → record), ``state``
(cursors, runs, leases on the platform store), ``extract`` (server-side reads, batches),
``reader`` (reading in the validation process), ``runner`` (extract → map → pipeline → cursor),
``checksum`` (change detection without an update time), ``probe`` (table listing and mapping
skeleton), ``scheduler`` (the worker loop), ``cli`` (``phip collect``). The synthetic HIS that
tests and benchmarks read is :mod:`phip.synth.his_synth`.
"""
