"""Warrant valuation (估值定价): pure pricing models and their API."""
