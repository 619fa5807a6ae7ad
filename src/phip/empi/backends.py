"""Where the batch relink's Splink prediction runs (关联计算后端): DuckDB or Spark.

``PHIP_EMPI_BACKEND`` picks one; the relink asks it for one thing only, the scored candidate
pairs of a persons table under the stored model (:meth:`SplinkBackend.predict`). Reading the
store, clustering with the ID-number guard and writing back stay the same code for both: they
work on the Arrow pair list, which is a few hundred thousand rows for a million persons.

- ``duckdb`` (default): Splink on an in-process DuckDB, as before.
- ``spark``: Splink's Spark backend. ``PHIP_SPARK_MASTER`` defaults to ``local[*]`` (a JVM child
  of this process using every core); a cluster's master URL runs the same code there. Nothing is
  downloaded: the similarity UDF jar comes from the installed Splink wheel, no Spark packages are
  resolved (no Ivy), and the web UI is off.

The stored model's SQL is DuckDB's (``training`` trains on DuckDB); :func:`spark_model`
translates it with sqlglot, renaming the one function whose Spark name differs (Jaro–Winkler is
the jar's ``jaro_winkler``).
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from phip.config import get_settings

from .errors import EmpiError

BACKENDS = ("duckdb", "spark")
PAIR_COLUMNS = ("person_id_l", "person_id_r", "match_weight", "match_probability")


class SplinkBackend(Protocol):
    """The engine-specific part of the relink."""

    name: str

    def predict(self, table: pa.Table, model: dict[str, Any], threshold: float) -> pa.Table:
        """Scored pairs (:data:`PAIR_COLUMNS`) at or above ``threshold``, from the stored model."""
        ...

    def close(self) -> None: ...


class DuckDBBackend:
    name = "duckdb"

    def predict(self, table: pa.Table, model: dict[str, Any], threshold: float) -> pa.Table:
        from .training import predict

        return predict(table, model, threshold)

    def close(self) -> None:
        pass


class SparkBackend:
    """Splink on Spark. Reuses a running SparkSession (a test module's, a notebook's) and leaves
    it running; otherwise starts one and stops it on :meth:`close`, so no JVM outlives the relink."""

    name = "spark"

    def __init__(self, master: str | None = None, driver_memory: str | None = None):
        try:
            from pyspark.sql import SparkSession
        except ImportError as e:  # the `spark` extra was left out of this installation
            raise EmpiError("SPARK_NOT_INSTALLED", "PHIP_EMPI_BACKEND=spark 需要 pyspark：pip install 'phip[spark]'（及 Java 17）") from e

        self.scratch = Path(tempfile.mkdtemp(prefix="phip-spark-"))
        active = SparkSession.getActiveSession()
        self.owned = active is None
        settings = get_settings()
        self.spark = active or spark_session(master or settings.spark_master,
                                             driver_memory or settings.spark_driver_memory, self.scratch)

    def predict(self, table: pa.Table, model: dict[str, Any], threshold: float) -> pa.Table:
        from splink import Linker, SparkAPI

        from .training import _quiet

        _quiet()
        # Splink breaks Spark's lineage by writing intermediate tables as Parquet under the
        # checkpoint directory: one of our own per call, removed with what it holds
        checkpoints = Path(tempfile.mkdtemp(prefix="checkpoints-", dir=self.scratch))
        self.spark.sparkContext.setCheckpointDir(str(checkpoints))
        try:
            db = SparkAPI(spark_session=self.spark)
            linker = Linker(db.register(table), spark_model(model))
            pairs = linker.inference.predict(threshold_match_probability=threshold)
            out = pairs.as_spark_dataframe().select(*PAIR_COLUMNS).toArrow()
            linker.table_management.delete_tables_created_by_splink_from_db()
        finally:
            shutil.rmtree(checkpoints, ignore_errors=True)
        # Spark widens nothing here, but its Arrow schema may carry nullability flags of its own
        return out.cast(pa.schema([(c, out.schema.field(c).type) for c in PAIR_COLUMNS]))

    def jvm_pid(self) -> int:
        """The driver JVM's process id (in local mode, all of Spark): benchmarks read its memory."""
        return int(self.spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())

    def close(self) -> None:
        if self.owned:
            self.spark.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


def spark_session(master: str, driver_memory: str, scratch: Path, conf: dict[str, str] | None = None) -> Any:
    """A SparkSession set up for Splink without the network: the UDF jar from the Splink wheel,
    no UI, scratch and warehouse in ``scratch``, bound to the loopback in local mode; ``conf``
    adds to or overrides Spark settings."""
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    # the Python workers (if Spark needs any) run this interpreter, not whatever `python3` is
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (SparkSession.builder.master(master).appName("phip-empi-relink")
               .config("spark.jars", similarity_jar_location())
               .config("spark.driver.memory", driver_memory)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.local.dir", str(scratch))
               .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    if master.startswith("local"):
        # 200 shuffle partitions (Spark's default, sized for a cluster) are mostly empty on a few
        # cores; a cluster keeps its own configuration
        builder = (builder.config("spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 1)))
                   .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1"))
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_model(model: dict[str, Any]) -> dict[str, Any]:
    """The stored (DuckDB) Splink model with its SQL translated to Spark's dialect."""
    out = copy.deepcopy(model)
    out["sql_dialect"] = "spark"
    for comp in out["comparisons"]:
        for level in comp["comparison_levels"]:
            if level["sql_condition"].strip().upper() != "ELSE":
                level["sql_condition"] = _to_spark(level["sql_condition"])
            level.pop("sql_dialect", None)
    for rule in out.get("blocking_rules_to_generate_predictions", []):
        rule["blocking_rule"] = _to_spark(rule["blocking_rule"])
        rule["sql_dialect"] = "spark"
    return out


def _to_spark(sql: str) -> str:
    import sqlglot
    from sqlglot import exp

    def rename(node: exp.Expression) -> exp.Expression:
        # DuckDB's jaro_winkler_similarity is the Splink jar's jaro_winkler (Spark has none)
        if isinstance(node, exp.JarowinklerSimilarity):
            return exp.Anonymous(this="jaro_winkler", expressions=[node.this, node.expression])
        return node

    return sqlglot.parse_one(sql, read="duckdb").transform(rename).sql(dialect="spark")


def backend_named(name: str) -> SplinkBackend:
    if name == "duckdb":
        return DuckDBBackend()
    if name == "spark":
        return SparkBackend()
    raise EmpiError("BAD_EMPI_BACKEND", f"PHIP_EMPI_BACKEND 取值 {name!r} 无效，应为 {' 或 '.join(BACKENDS)}")


@contextmanager
def open_backend(name: str | None = None) -> Iterator[SplinkBackend]:
    """The backend ``name`` (default: ``PHIP_EMPI_BACKEND``), closed on leaving."""
    backend = backend_named(name or get_settings().empi_backend)
    try:
        yield backend
    finally:
        backend.close()
