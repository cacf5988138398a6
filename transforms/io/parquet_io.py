"""Deterministic, atomic Parquet shards through Beam's filesystems (local paths or gs://).

Rows go to shard `hash(key) % n`, are sorted by key inside the shard, and are written to a
temporary name that is renamed once complete, so a killed stage never leaves a half shard under a
final name. Every shard index is written, empty or not, so names are stable:
`part-00000-of-00004.parquet`. Shards a stage writes in several passes into one folder (generate's
rounds) carry the pass as a tag, `part-00000-of-00004.round-02.parquet`, which the same glob reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from typing import AbstractSet

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.io import faults

SHARD_GLOB = "part-*-of-*.parquet"
TEMP_PREFIX = ".tmp-"
_SHARD_NAME = re.compile(r"^part-\d+-of-\d+(?:\.([\w-]+))?\.parquet$")


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
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf, compression="zstd")
    return buf.getvalue()


def write_atomically(path: str, payload: bytes) -> None:
    tmp = FileSystems.join(FileSystems.split(path)[0], f"{TEMP_PREFIX}{uuid.uuid4().hex}-{FileSystems.split(path)[1]}")
    with FileSystems.create(tmp) as f:
        f.write(payload)
    faults.reached("mid_write")
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


class WriteSortedShards(beam.PTransform):
    """Writes dict rows as `num_shards` Parquet files sorted by `key` (a column, or a tuple of columns
    whose first one picks the shard); emits the written paths. `only` limits the shard indices
    written (its rows must all belong to them), so shards can be produced by separate runs."""

    def __init__(self, out_dir: str, schema: pa.Schema, key: str | tuple[str, ...], num_shards: int,
                 only: list[int] | None = None, tag: str = ""):
        super().__init__()
        self.out_dir, self.schema, self.num_shards, self.tag = out_dir, schema, num_shards, tag
        self.key = (key,) if isinstance(key, str) else tuple(key)
        self.indices = list(range(num_shards)) if only is None else sorted(only)

    def expand(self, rows):
        n, first = self.num_shards, self.key[0]
        keyed = rows | "KeyByShard" >> beam.Map(lambda r: (shard_index(r[first], n), r))
        every_shard = rows.pipeline | "EveryShard" >> beam.Create([(i, None) for i in self.indices])
        return (
            (keyed, every_shard)
            | "Merge" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.MapTuple(self._write)
        )

    def _write(self, index: int, rows) -> str:
        if index not in self.indices:
            raise ValueError(f"{self.out_dir}: a row belongs to shard {index}, outside the shards {self.indices} "
                             f"this run writes")
        kept = sorted((r for r in rows if r is not None), key=lambda r: tuple(r[k] for k in self.key))
        path = FileSystems.join(self.out_dir, shard_name(index, self.num_shards, self.tag))
        write_atomically(path, table_bytes(kept, self.schema))
        return path


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def file_sha256(path: str) -> str:
    return hashlib.sha256(read_bytes(path)).hexdigest()


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


def shard_entry(path: str) -> dict:
    """Name, row count and sha256 of one shard, for a manifest."""
    payload = read_bytes(path)
    return {
        "file": FileSystems.split(path)[1],
        "rows": pq.ParquetFile(io.BytesIO(payload)).metadata.num_rows,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }


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
