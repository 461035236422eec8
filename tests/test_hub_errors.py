"""gpt2ja.hub_errors: failed reads from the Hub as one sentence, a local file's error as itself."""

import socket

import pytest
from huggingface_hub import HfApi

from gpt2ja.errors import UserError
from gpt2ja.hub_errors import hub_read_errors


def closed_port():
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_hub_is_one_sentence_that_names_what_was_read_and_the_fix():
    api = HfApi(endpoint=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(UserError, match=r"^Could not reach the Hub \(.*\) for dataset u/d \(\w+: .*\); check the "
                                        r"connection or HF_ENDPOINT, then rerun\.$"):
        with hub_read_errors("dataset u/d", "then rerun"):
            api.dataset_info("u/d")


def test_a_refused_token_and_other_http_failures_are_told_apart():
    with pytest.raises(UserError, match=r"refused the token \(HTTP 401\) when reading model tester/m: run `hf auth"):
        with hub_read_errors("model tester/m", "then rerun"):
            raise_http(401)
    with pytest.raises(UserError, match=r"failed to give model tester/m \(.*500.*\); then rerun\.$"):
        with hub_read_errors("model tester/m", "then rerun"):
            raise_http(500)


def raise_http(status):
    """The error huggingface_hub raises for an HTTP status, from a real response."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError
    request = httpx.Request("GET", "http://127.0.0.1/api/models/tester/m")
    raise HfHubHTTPError(f"{status} Server Error", response=httpx.Response(status, request=request))


def test_a_local_files_error_is_not_the_networks(tmp_path):
    with pytest.raises(FileNotFoundError):
        with hub_read_errors("dataset u/d", "then rerun"):
            open(tmp_path / "absent")
