"""HTTP plumbing shared by every feature: problem responses, request ids, pagination, commands."""
