"""The simulator's HTTP client: answers parsed whole however they arrive, connections reused or dropped."""

from __future__ import annotations

import asyncio

import pytest

from traffic.http import Client, _parse

ANSWER = b'HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{"id": "a1"}'
CHUNKED = b'HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"type"\r\n6;ext=1\r\n: "x"}\r\n0\r\n\r\n'


@pytest.mark.parametrize(
    "raw, expected",
    [
        (ANSWER, (201, b'{"id": "a1"}', len(ANSWER), True)),
        (CHUNKED, (409, b'{"type": "x"}', len(CHUNKED), True)),
        (
            ANSWER.replace(b"content-type", b"Connection: close\r\ncontent-type"),
            (201, b'{"id": "a1"}', len(ANSWER) + 19, False),
        ),
    ],
)
def test_an_answer_is_parsed_only_once_all_of_it_arrived(raw, expected):
    for cut in range(len(raw)):
        assert _parse(bytearray(raw[:cut])) is None, cut
    assert _parse(bytearray(raw + b"HTTP/1.1 200 OK")) == expected


def test_the_client_reuses_connections_and_resends_when_an_idle_one_was_closed():
    async def scenario() -> tuple[list, list[int]]:
        accepted: list[int] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(len(accepted))
            try:
                while await reader.readuntil(b"\r\n\r\n"):
                    writer.write(ANSWER)
                    await writer.drain()
                    if len(accepted) == 1:  # the first connection is closed after one answer, unannounced
                        break
            except asyncio.IncompleteReadError:
                pass  # the client closed it
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = Client(f"http://127.0.0.1:{port}", {"Authorization": "Bearer t"}, size=2)
        answers = [await client.request("POST", "/orders", json={"n": n}) for n in range(3)]
        await client.aclose()
        server.close()
        await server.wait_closed()
        return answers, accepted

    answers, accepted = asyncio.run(scenario())
    assert answers == [(201, {"id": "a1"})] * 3
    assert len(accepted) == 2  # one resend on a new connection, then that one is kept
