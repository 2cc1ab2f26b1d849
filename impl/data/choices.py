"""Names shared by the data readers, the training configuration and the CLI (no imports, cheap to load)."""

# --data_loader: "auto" holds a set in memory when its decoded pixels fit MEMORY_LIMIT_BYTES, else streams.
DATA_LOADERS: tuple[str, ...] = ("auto", "memory", "stream")
MEMORY_LIMIT_BYTES = 1 << 30
# iddpm prepare --format
PREPARE_FORMATS: tuple[str, ...] = ("shards", "npy")
SPLITS: tuple[str, ...] = ("train", "test")
DEFAULT_SHARD_SIZE = 10000
