"""Errors a user can fix (bad input, missing artifact); the CLI prints them as one line."""


class UserError(Exception):
    """Bad input: the message names the file, key or parameter at fault."""
