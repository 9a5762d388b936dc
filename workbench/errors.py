"""Errors a user can act on. The CLI prints them as one line (`workbench: error: ...`), exit 2."""


class UserError(Exception):
    """A problem the user can fix: bad input, a missing or corrupt file, a dead peer."""


class ModelLoadError(UserError):
    """A model folder that cannot be loaded; the message names the file at fault."""
