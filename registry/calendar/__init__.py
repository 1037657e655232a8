"""The market's trading days (交易日): a pure calendar model, its edits, and the XSHG seed."""
