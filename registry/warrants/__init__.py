"""The 认股权 (stock warrant) registry: series, holdings, transfers, exercise, the share register."""
