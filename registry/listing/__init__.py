"""Listing pipeline: stages and moves, filed facts, versioned rulebooks and their evaluation."""
