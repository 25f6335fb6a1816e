#!/usr/bin/python3
"""Plays bmcweb's /console0 for petitlab's tests, on Python's `websockets`
(Debian's python3-websockets, its legacy server API, present from 10.x on).

    ws_console.py CERT KEY TOKEN COOKIE XSRF PING_INTERVAL

Serves wss://127.0.0.1:<free port>/console0 and prints `listening PORT`.
Like bmcweb, the upgrade is refused with 401 unless it carries
`X-Auth-Token: TOKEN`, or the cookie `SESSION=COOKIE` together with
`Sec-WebSocket-Protocol: XSRF` (bmcweb's CSRF check for cookie sessions;
the protocol is echoed back). A connection gets a banner, then every
message is echoed back as binary, as a host echoing its input would.

One line per event on stdout: `refused 401`, `open N`, `message SIZE
binary|text`, `closed`. Commands on stdin, each answered `done CMD`:
`close` (close frame 1011, as bmcweb closes when the console socket
fails), `abort` (drop the TCP connection without a close frame).
Pings go out every PING_INTERVAL seconds; a peer that does not answer
within five intervals is dropped (close 1011 "keepalive ping timeout").
"""

import asyncio
import http
import ssl
import sys

from websockets.legacy.server import serve

CERT, KEY, TOKEN, COOKIE, XSRF, PING = sys.argv[1:7]
PING = float(PING)
BANNER = b"Press ~. to exit console\r\n"
CONNECTIONS = set()


def say(line):
    print(line, flush=True)


def authorized(headers):
    if headers.get("X-Auth-Token") == TOKEN:
        return True
    cookies = dict(
        part.strip().split("=", 1)
        for part in headers.get("Cookie", "").split(";")
        if "=" in part
    )
    return (
        cookies.get("SESSION") == COOKIE
        and headers.get("Sec-WebSocket-Protocol") == XSRF
    )


async def process_request(path, headers):
    if path != "/console0":
        say("refused 404")
        return http.HTTPStatus.NOT_FOUND, [], b"Not Found\n"
    if not authorized(headers):
        say("refused 401")
        return http.HTTPStatus.UNAUTHORIZED, [], b"Unauthorized\n"
    return None


async def console(ws):
    CONNECTIONS.add(ws)
    say(f"open {len(CONNECTIONS)}")
    try:
        await ws.send(BANNER)
        async for message in ws:
            kind = "binary" if isinstance(message, bytes) else "text"
            data = message if isinstance(message, bytes) else message.encode()
            say(f"message {len(data)} {kind}")
            await ws.send(data)
    finally:
        CONNECTIONS.discard(ws)
        say("closed")


async def control():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while True:
        line = await reader.readline()
        if not line:
            return  # the test is gone
        command = line.decode().strip()
        for ws in list(CONNECTIONS):
            if command == "close":
                await ws.close(1011, "Error connecting to host port")
            elif command == "abort":
                ws.transport.abort()
        say(f"done {command}")


async def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    async with serve(
        console,
        "127.0.0.1",
        0,
        ssl=context,
        process_request=process_request,
        subprotocols=[XSRF],
        max_size=1 << 20,
        compression=None,
        ping_interval=PING,
        ping_timeout=5 * PING,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        say(f"listening {port}")
        await control()


asyncio.run(main())
