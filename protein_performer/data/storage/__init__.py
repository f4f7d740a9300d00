"""Corpora on disk: ``store`` (the memory-mapped token store), ``shards`` (WebDataset shard
sets, local or object storage) and ``streaming`` (training from a shard set)."""
