"""A destination's refusal in the server's words, never taken for an outage."""

import httpx
import pytest

from xanes_stream.store.refusals import WriteRefused, check_writable, refusal, server_words
from xanes_stream.store.spool import is_outage


def http_error(status: int, body) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://h:8000/api/v1/metadata/xanes")
    response = httpx.Response(status, json=body, request=request)
    return httpx.HTTPStatusError(f"{status}: {body}", request=request, response=response)


def test_the_servers_words():
    error = http_error(405, {"detail": "This node does not support creation of new nodes."})
    assert server_words(error) == (
        "405 Method Not Allowed: This node does not support creation of new nodes."
    )
    words = str(refusal(error, "http://h:8000"))
    assert words.startswith("the Tiled at http://h:8000 refused to write maps: 405")
    assert not is_outage(WriteRefused(words))  # a refusal is never spooled


def test_no_answer_is_unreachable_not_refused():
    error = refusal(httpx.ConnectError("connection refused"), "http://h:8000")
    assert not isinstance(error, WriteRefused)
    assert str(error).startswith("cannot reach the Tiled at http://h:8000")


def test_the_probe_says_a_500_from_a_read_only_tree():
    class ReadOnly:
        def create_container(self, key, **kwargs):
            raise http_error(500, {"detail": "Internal Server Error"})

    with pytest.raises(WriteRefused, match="refused to write maps: 500 Internal Server Error"):
        check_writable(ReadOnly(), "http://h:8000")
