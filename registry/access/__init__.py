"""Access control: identities from signed tokens, roles, route policies and four-eyes."""
