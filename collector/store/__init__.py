"""Storage: the on-disk contract, the rotating JSONL writer, snapshots, Parquet compaction."""
