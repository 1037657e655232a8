"""registry: system of record for a regional equity market (区域性股权市场)."""
