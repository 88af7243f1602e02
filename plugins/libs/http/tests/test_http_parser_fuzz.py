"""Whatever a server answers, the client gives a Response whose body reads within the limit
asked, or an HttpError with a short reason: never another exception (a traceback in a
check's message). The answers are pieces of HTTP put together at random, and random bytes;
they are fed to the client's parser through a stream, as a socket would."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from halo_lib_http import MAX_HEAD, Client, HttpError, Response

PIECES = [
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.0 204 No Content\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /x\r\n",
    b"HTTP/2 200\r\n",
    b"HTTP/1.1 99 Low\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 1, 1\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Content-Length: x\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n",
    b"Content-Type: text/html; charset=\xff\r\n",
    b" folded\r\n",
    b"X-\xe9: \xff\xfe\r\n",
    b"no colon\r\n",
    b"\r\n",
    b"\n",
    b"5\r\nhello\r\n",
    b"5;ext=1\r\nhel",
    b"fffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"0\r\nTrailer: 1\r\n\r\n",
    b"zz\r\n",
    b"hello",
]

ANSWERS = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=12)), max_size=12).map(b"".join),
    st.binary(max_size=200),
)


class _Conn:
    """What a Response and the head reader use of a connection: its reader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.certificate = None
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


async def exchange(data: bytes, method: str, limit: int) -> None:
    reader = asyncio.StreamReader(limit=MAX_HEAD)
    reader.feed_data(data)
    reader.feed_eof()
    conn = _Conn(reader)
    client = Client()
    try:
        version, status, reason, headers = await client._read_head(conn)
        response = Response(
            client,
            conn,
            "http://192.0.2.1/",
            method,
            version,
            status,
            reason,
            headers,
            False,
        )
        body, _ = await response.read(limit)
        assert len(body) <= limit
        assert isinstance(reason, str) and 100 <= status <= 999
        _ = response.charset
        response.close()
        assert conn.closed  # not reusable here: closed, never kept
    except HttpError as exc:
        assert str(exc)  # a reason, never empty


@settings(max_examples=400, deadline=None)
@given(ANSWERS, st.sampled_from(["GET", "HEAD"]), st.integers(0, 64))
def test_any_answer_is_a_response_or_an_http_error(data: bytes, method: str, limit: int) -> None:
    asyncio.run(exchange(data, method, limit))
