"""The project's error types. Standard library only, so that any module, however light, can raise them."""


class UserError(Exception):
    """A problem the user can fix; the scripts print its one-sentence message and exit 1."""


class DumpError(UserError):
    """A dump that cannot be read: missing, empty, not a MediaWiki export, cut or corrupt."""


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite; the run stopped without saving that step."""
