"""Failures of the Hub and of the network, as one sentence: a floor below data (a Hub dataset streamed),
training (a base model downloaded) and publishing (uploads), which all read from the Hub.

huggingface_hub is imported where a failure is read, so the modules above stay light to import.
"""

import importlib
from contextlib import contextmanager

from .errors import UserError


def network_errors():
    """What a failed connection raises: an OSError (socket, SSL, the Xet transfer layer), or the HTTP client's
    own errors (huggingface_hub 2 uses httpx2, 1.x httpx). An OSError naming a file is a local file's, not
    the network's (see is_local_file)."""
    errors = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def is_local_file(error):
    """Whether an OSError is about a file on this machine (no rerun over the network mends it)."""
    return getattr(error, "filename", None) is not None


def http_status(error):
    """The HTTP status of a huggingface_hub HTTP error, None where it carries no response."""
    return error.response.status_code if error.response is not None else None


def first_line(error):
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


@contextmanager
def hub_read_errors(what, fix):
    """Turn a failed read of `what` from the Hub (HF_ENDPOINT) into one sentence ending in `fix`; the caller
    catches the failures it can say more of (a repo or revision that does not exist) inside."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError
    try:
        yield
    except HfHubHTTPError as error:
        status = http_status(error)
        if status == 401:
            raise UserError(f"The Hub ({constants.ENDPOINT}) refused the token (HTTP 401) when reading {what}: run "
                            "`hf auth login` or set HF_TOKEN with a valid token.") from None
        raise UserError(f"The Hub ({constants.ENDPOINT}) failed to give {what} ({first_line(error)}); {fix}.") from None
    except network_errors() as error:
        if is_local_file(error):
            raise
        raise UserError(f"Could not reach the Hub ({constants.ENDPOINT}) for {what} ({type(error).__name__}: "
                        f"{first_line(error)}); check the connection or HF_ENDPOINT, {fix}.") from None
