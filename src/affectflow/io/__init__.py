"""Storage: the HDF5 shard store and the readers stages use to look videos up across shards."""
