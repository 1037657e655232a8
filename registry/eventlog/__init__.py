"""The event log: append, read, canonical bytes and hashes, verification."""
