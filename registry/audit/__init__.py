"""Audit and transparency: the Merkle tree over the log, proofs, signed checkpoints, exports, offline verification."""
