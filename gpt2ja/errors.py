"""The project's error types. Standard library only, so that any module, however light, can raise them."""


class UserError(Exception):
    """A problem the user can fix; the scripts print its one-sentence message and exit 1."""


class DumpError(UserError):
    """A dump that cannot be read: missing, empty, not a MediaWiki export, cut or corrupt."""


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite; the run stopped without saving that step."""


def reason_inside(error):
    """The UserError or OSError a wrapping error carries in its chain (datasets wraps what a generator raised in
    a DatasetGenerationError), or None."""
    cause = error.__cause__ or error.__context__
    while cause is not None and not isinstance(cause, (UserError, OSError)):
        cause = cause.__cause__ or cause.__context__
    return cause
