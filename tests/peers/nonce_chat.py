"""A chat server that gives every message an id of its own and echoes, at
most, the sender's client nonce: the shape of most production chat backends.
Built on the `websockets` package, for tests/chat_servers.rs.

    python3 tests/peers/nonce_chat.py

Protocol (JSON text frames):
- {"op":"join","room":"r","user":"u"} -> {"op":"joined","room":"r"}
- {"op":"send","text":"...","nonce":"..."} -> to every other member of the
  room {"op":"message","data":{"id":"m-17","room":"r","from":"u",
  "text":"...","created_at":MS,"client_nonce":"..."}} (client_nonce only
  when a nonce was sent; every other field the client sent is dropped), and
  to the sender {"op":"ack","data":{...the same message...}}.

With --withhold-ack-every K, every K-th message goes unacknowledged.

Counts what it saw: GET /stats -> {sessions, open, joins, messages,
deliveries, acks, acks_withheld}.

Prints "listening PORT" once ready. Exits when its standard input closes
(the test ended) or after --lifetime seconds, whichever comes first. A
missing package is named on stderr with how to install it (exit 3).
"""

import argparse
import asyncio
import itertools
import json
import os
import sys
import threading
import time
from http import HTTPStatus


def missing(package, error):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.stderr.write(
        f"the {package!r} package from PyPI is not installed ({error}): run .ci/run, "
        f"or pip install --target {os.path.join(here, 'python_modules')} {package}\n"
    )
    sys.exit(3)


try:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed
except ImportError as e:
    missing("websockets", e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lifetime", type=float, default=300)
    ap.add_argument("--withhold-ack-every", type=int, default=0)
    args = ap.parse_args()

    rooms = {}
    stats = dict(sessions=0, open=0, joins=0, messages=0, deliveries=0, acks=0, acks_withheld=0)
    ids = itertools.count(1)

    async def handler(ws):
        stats["sessions"] += 1
        stats["open"] += 1
        room = user = None
        try:
            async for raw in ws:
                try:
                    m = json.loads(raw)
                except ValueError:
                    continue
                op = m.get("op")
                if op == "join":
                    if room is not None:
                        rooms.get(room, set()).discard(ws)
                    room, user = str(m.get("room", "lobby")), str(m.get("user", "guest"))
                    rooms.setdefault(room, set()).add(ws)
                    stats["joins"] += 1
                    await ws.send(json.dumps({"op": "joined", "room": room}))
                elif op == "send" and room is not None:
                    stats["messages"] += 1
                    msg = {
                        "id": f"m-{next(ids)}",
                        "room": room,
                        "from": user,
                        "text": str(m.get("text", "")),
                        "created_at": int(time.time() * 1000),
                    }
                    if "nonce" in m:
                        msg["client_nonce"] = m["nonce"]
                    frame = json.dumps({"op": "message", "data": msg})
                    for peer in list(rooms.get(room, ())):
                        if peer is ws:
                            continue
                        try:
                            await peer.send(frame)
                            stats["deliveries"] += 1
                        except ConnectionClosed:
                            pass
                    k = args.withhold_ack_every
                    if k and stats["messages"] % k == 0:
                        stats["acks_withheld"] += 1
                        continue
                    await ws.send(json.dumps({"op": "ack", "data": msg}))
                    stats["acks"] += 1
        except ConnectionClosed:
            pass
        finally:
            if room is not None:
                rooms.get(room, set()).discard(ws)
            stats["open"] -= 1

    def process_request(connection, request):
        if request.path == "/stats":
            resp = connection.respond(HTTPStatus.OK, json.dumps(stats) + "\n")
            resp.headers["Content-Type"] = "application/json"
            return resp
        return None

    async def run():
        async with serve(
            handler,
            "127.0.0.1",
            0,
            process_request=process_request,
            ping_interval=None,
            compression=None,
        ) as server:
            port = server.sockets[0].getsockname()[1]
            print(f"listening {port}", flush=True)
            done = asyncio.Event()
            loop = asyncio.get_running_loop()

            def watch_stdin():
                try:
                    while sys.stdin.buffer.read(4096):
                        pass
                except (OSError, ValueError):
                    pass
                loop.call_soon_threadsafe(done.set)

            threading.Thread(target=watch_stdin, daemon=True).start()
            try:
                await asyncio.wait_for(done.wait(), args.lifetime)
            except asyncio.TimeoutError:
                pass

    asyncio.run(run())


if __name__ == "__main__":
    main()
