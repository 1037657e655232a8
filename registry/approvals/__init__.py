"""Four-eyes (双人复核): operator actions that a second operator must approve."""
