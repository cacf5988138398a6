import io

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline

from transforms.io import parquet_io
from transforms.io.parquet_io import (
    WriteSortedShards,
    clear_shards,
    keep_only_tags,
    list_shards,
    read_rows,
    shard_entries,
    shard_tag,
)

SCHEMA = pa.schema([("id", pa.string()), ("value", pa.int64())])
ROWS = [{"id": f"r{i:03d}", "value": i} for i in range(50)]


def write(out_dir, rows, shards=4, **options):
    with TestPipeline() as p:
        _ = p | beam.Create(rows) | WriteSortedShards(str(out_dir), SCHEMA, "id", shards, **options)


def test_every_shard_written_sorted_and_complete(tmp_path):
    write(tmp_path, ROWS)
    names = [p.rsplit("/", 1)[1] for p in list_shards(str(tmp_path))]
    assert names == [f"part-{i:05d}-of-00004.parquet" for i in range(4)]
    rows = read_rows(str(tmp_path))
    assert sorted(r["id"] for r in rows) == [r["id"] for r in ROWS]
    for path in list_shards(str(tmp_path)):
        ids = [r["id"] for r in read_rows(path)]
        assert ids == sorted(ids)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_output_is_byte_identical_across_runs_and_input_order(tmp_path):
    write(tmp_path / "a", ROWS)
    write(tmp_path / "b", list(reversed(ROWS)))
    assert shard_entries(str(tmp_path / "a")) == shard_entries(str(tmp_path / "b"))


def test_empty_input_still_writes_every_shard(tmp_path):
    write(tmp_path, [], shards=2)
    entries = shard_entries(str(tmp_path))
    assert [e["rows"] for e in entries] == [0, 0]


def test_clear_removes_stale_shards_and_manifest(tmp_path):
    write(tmp_path, ROWS, shards=3)
    (tmp_path / "manifest.json").write_text("{}")
    clear_shards(str(tmp_path))
    assert list_shards(str(tmp_path)) == [] and not (tmp_path / "manifest.json").exists()


def test_tagged_shards_are_read_with_the_rest_and_cleared_by_their_tag(tmp_path):
    write(tmp_path, ROWS[:20], shards=2)
    with TestPipeline() as p:
        _ = p | beam.Create(ROWS[20:]) | WriteSortedShards(str(tmp_path), SCHEMA, "id", 2, tag="round-02")
    names = [p.rsplit("/", 1)[1] for p in list_shards(str(tmp_path))]
    assert names == ["part-00000-of-00002.parquet", "part-00000-of-00002.round-02.parquet",
                     "part-00001-of-00002.parquet", "part-00001-of-00002.round-02.parquet"]
    assert [shard_tag(n) for n in names] == ["", "round-02", "", "round-02"]
    assert sorted(r["id"] for r in read_rows(str(tmp_path))) == [r["id"] for r in ROWS]
    clear_shards(str(tmp_path), keep={"part-00001-of-00002.round-02.parquet"}, tag="round-02")
    assert len(list_shards(str(tmp_path))) == 3  # the untagged ones are another pass's
    keep_only_tags(str(tmp_path), {"round-02"})
    assert [p.rsplit("/", 1)[1] for p in list_shards(str(tmp_path))] == ["part-00001-of-00002.round-02.parquet"]


def test_shard_count_grows_with_the_rows_past_max_rows_per_shard(tmp_path):
    write(tmp_path / "few", ROWS[:15], shards=2, max_rows_per_shard=10)
    write(tmp_path / "many", ROWS, shards=2, max_rows_per_shard=10)
    few, many = (shard_entries(str(tmp_path / name)) for name in ("few", "many"))
    assert [e["file"] for e in few] == [f"part-{i:05d}-of-00002.parquet" for i in range(2)]
    assert [e["file"] for e in many] == [f"part-{i:05d}-of-00005.parquet" for i in range(5)]
    assert sorted(r["id"] for r in read_rows(str(tmp_path / "many"))) == [r["id"] for r in ROWS]
    write(tmp_path / "fixed", ROWS[:15], shards=2)
    assert shard_entries(str(tmp_path / "fixed")) == few  # below the cap, the same files as without it


def test_a_shard_is_written_in_row_groups_with_the_bytes_of_one_table_below_that(monkeypatch):
    rows = ROWS[:10]
    one_table = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), one_table, compression="zstd")
    assert parquet_io.table_bytes(rows, SCHEMA) == one_table.getvalue()
    monkeypatch.setattr(parquet_io, "ROW_GROUP_ROWS", 4)
    grouped = pq.ParquetFile(io.BytesIO(parquet_io.table_bytes(rows, SCHEMA)))
    assert grouped.metadata.num_row_groups == 3 and grouped.read().to_pylist() == rows
