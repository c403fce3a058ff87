"""Errors meant for users, kept apart from bugs (asv's habit): the CLI and plugin print them as one line."""


class HwcalError(Exception):
    """A problem the user can fix: bad option, unreadable registry file, missing optional dependency."""


class RegistryFileError(HwcalError):
    """A registry file that cannot be read, parsed or validated; names the file and the reason."""
