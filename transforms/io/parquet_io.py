"""Deterministic, atomic Parquet shards through Beam's filesystems (local paths or gs://).

Rows go to shard `hash(key) % n`, are sorted by key inside the shard, and are written to a
temporary name that is renamed once complete, so a killed stage never leaves a half shard under a
final name. A shard goes to its file in row groups, never whole in memory as a table and as bytes; with
`max_rows_per_shard`, the shard count grows with the rows so no worker holds more than about that many.
Every shard index is written, empty or not, so names are stable:
`part-00000-of-00004.parquet`. Shards a stage writes in several passes into one folder (generate's
rounds) carry the pass as a tag, `part-00000-of-00004.round-02.parquet`, which the same glob reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import uuid
from contextlib import contextmanager
from typing import AbstractSet, BinaryIO, Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.io import faults

SHARD_GLOB = "part-*-of-*.parquet"
TEMP_PREFIX = ".tmp-"
_SHARD_NAME = re.compile(r"^part-\d+-of-\d+(?:\.([\w-]+))?\.parquet$")
ROW_GROUP_ROWS = 65_536  # rows turned into an Arrow table at a time when a shard is written
MAX_ROWS_PER_SHARD = 100_000  # curate's outputs: more shards than curate.num_shards once a shard would hold more


def shard_name(index: int, count: int, tag: str = "") -> str:
    return f"part-{index:05d}-of-{count:05d}{f'.{tag}' if tag else ''}.parquet"


def shard_tag(name: str) -> str:
    """The tag of a shard file name ("" for an untagged one)."""
    match = _SHARD_NAME.match(name)
    if not match:
        raise ValueError(f"{name!r} is not a shard name like {shard_name(0, 1)}")
    return match.group(1) or ""


def shard_index(key: str, count: int) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % count


def table_bytes(rows: list[dict], schema: pa.Schema) -> bytes:
    buf = io.BytesIO()
    write_rows(rows, schema, buf)
    return buf.getvalue()


def write_rows(rows: list[dict], schema: pa.Schema, out: BinaryIO) -> None:
    """Rows as Parquet, ROW_GROUP_ROWS at a time (the same bytes as one pq.write_table up to that many rows)."""
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for start in range(0, max(len(rows), 1), ROW_GROUP_ROWS):
            writer.write_table(pa.Table.from_pylist(rows[start : start + ROW_GROUP_ROWS], schema=schema))


@contextmanager
def atomic_file(path: str) -> Iterator[BinaryIO]:
    """A file written under a temporary name and renamed to `path` once the block ends; removed if it fails."""
    tmp = FileSystems.join(FileSystems.split(path)[0], f"{TEMP_PREFIX}{uuid.uuid4().hex}-{FileSystems.split(path)[1]}")
    try:
        with FileSystems.create(tmp) as f:
            yield f
    except BaseException:
        if FileSystems.exists(tmp):
            FileSystems.delete([tmp])
        raise
    faults.reached("mid_write")
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def write_atomically(path: str, payload: bytes) -> None:
    with atomic_file(path) as f:
        f.write(payload)


class WriteSortedShards(beam.PTransform):
    """Writes dict rows as `num_shards` Parquet files sorted by `key` (a column, or a tuple of columns
    whose first one picks the shard); emits the written paths. `only` limits the shard indices
    written (its rows must all belong to them), so shards can be produced by separate runs. With
    `max_rows_per_shard`, the rows are counted first and there are at least num_shards shards, and as many more
    as keep a shard at about that many rows."""

    def __init__(self, out_dir: str, schema: pa.Schema, key: str | tuple[str, ...], num_shards: int,
                 only: list[int] | None = None, tag: str = "", max_rows_per_shard: int = 0):
        super().__init__()
        if only is not None and max_rows_per_shard:
            raise ValueError("a shard count that follows the rows cannot be limited to given shards (only)")
        self.out_dir, self.schema, self.num_shards, self.tag = out_dir, schema, num_shards, tag
        self.key = (key,) if isinstance(key, str) else tuple(key)
        self.only, self.max_rows = only, max_rows_per_shard

    def expand(self, rows):
        first, least, max_rows = self.key[0], self.num_shards, self.max_rows
        if max_rows:
            count = (rows | "CountRows" >> beam.combiners.Count.Globally()
                     | "ShardCount" >> beam.Map(lambda c: max(least, math.ceil(c / max_rows))))
        else:
            count = rows.pipeline | "ShardCount" >> beam.Create([least])
        n = beam.pvalue.AsSingleton(count)  # one number, whatever the rows
        keyed = rows | "KeyByShard" >> beam.Map(lambda r, n: (shard_index(r[first], n), r), n=n)
        indices = self.only
        every_shard = count | "EveryShard" >> beam.FlatMap(
            lambda c: [(i, None) for i in (range(c) if indices is None else indices)])
        return (
            (keyed, every_shard)
            | "Merge" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(lambda shard, n: self._write(*shard, n), n=n)
        )

    def _write(self, index: int, rows, n: int) -> str:
        if self.only is not None and index not in self.only:
            raise ValueError(f"{self.out_dir}: a row belongs to shard {index}, outside the shards {sorted(self.only)} "
                             f"this run writes")
        kept = sorted((r for r in rows if r is not None), key=lambda r: tuple(r[k] for k in self.key))
        path = FileSystems.join(self.out_dir, shard_name(index, n, self.tag))
        with atomic_file(path) as f:
            write_rows(kept, self.schema, f)
        return path


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def file_sha256(path: str, chunk_bytes: int = 1 << 20) -> str:
    """Read as a stream: a shard's size does not reach memory."""
    digest = hashlib.sha256()
    with FileSystems.open(path) as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str) -> dict | None:
    """A JSON file's content, or None when there is no such file."""
    return json.loads(read_bytes(path)) if FileSystems.exists(path) else None


def list_shards(directory: str) -> list[str]:
    match = FileSystems.match([FileSystems.join(directory, SHARD_GLOB)])[0]
    return sorted(m.path for m in match.metadata_list)


def read_table(directory_or_file: str, schema: pa.Schema | None = None) -> pa.Table:
    paths = [directory_or_file] if directory_or_file.endswith(".parquet") else list_shards(directory_or_file)
    if not paths:
        raise FileNotFoundError(f"no Parquet shards under {directory_or_file}")
    tables = []
    for p in paths:
        tables.append(pq.read_table(io.BytesIO(read_bytes(p)), schema=schema))
    return pa.concat_tables(tables)


def read_rows(directory_or_file: str, schema: pa.Schema | None = None) -> list[dict]:
    return read_table(directory_or_file, schema).to_pylist()


def record_batches(directory_or_file: str, columns: list[str] | None = None, rows: int = 10_000):
    """A table as Arrow record batches of at most `rows` rows (only `columns`, when given), shard by shard."""
    paths = [directory_or_file] if directory_or_file.endswith(".parquet") else list_shards(directory_or_file)
    for path in paths:
        with FileSystems.open(path) as f:
            yield from pq.ParquetFile(f).iter_batches(batch_size=rows, columns=columns)


def read_batches(directory_or_file: str, columns: list[str], rows: int = 10_000):
    """The rows of a table with only `columns`, as a stream: at most `rows` of them in memory at a time."""
    for batch in record_batches(directory_or_file, columns, rows):
        yield from batch.to_pylist()


def shard_entry(path: str) -> dict:
    """Name, row count and sha256 of one shard, for a manifest."""
    return {"file": FileSystems.split(path)[1], "rows": footer_rows(path), "sha256": file_sha256(path)}


def footer_rows(path: str) -> int:
    """A Parquet file's row count, read from its footer alone."""
    with FileSystems.open(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


def shard_entries(directory: str) -> list[dict]:
    return [shard_entry(p) for p in list_shards(directory)]


def clear_shards(directory: str, keep: AbstractSet[str] = frozenset(), tag: str | None = None) -> None:
    """Removes the shards, manifest and temporary files of an earlier run (all but the shard files
    named in `keep`; with `tag`, only the shards of that tag), so a rerun cannot mix old and new shards."""
    if not FileSystems.exists(directory):
        FileSystems.mkdirs(directory)
    temporary = FileSystems.match([FileSystems.join(directory, f"{TEMP_PREFIX}*")])[0].metadata_list
    names = [FileSystems.split(p)[1] for p in list_shards(directory)]
    stale = [FileSystems.join(directory, name) for name in names
             if name not in keep and (tag is None or shard_tag(name) == tag)]
    stale += [m.path for m in temporary]
    manifest = FileSystems.join(directory, "manifest.json")
    if FileSystems.exists(manifest):
        stale.append(manifest)
    if stale:
        FileSystems.delete(stale)


def keep_only_tags(directory: str, tags: set[str]) -> None:
    """Removes the shards whose tag is not among `tags`: an earlier run's passes that this run does not make."""
    if not FileSystems.exists(directory):
        return
    stale = [p for p in list_shards(directory) if shard_tag(FileSystems.split(p)[1]) not in tags]
    if stale:
        FileSystems.delete(stale)


def write_manifest(directory: str, manifest: dict) -> None:
    payload = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    write_atomically(FileSystems.join(directory, "manifest.json"), payload)
