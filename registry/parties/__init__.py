"""Parties: enterprises, investors, accounts and qualified-investor (合格投资者) status."""
