"""A Socket.IO chat server built on python-socketio (AsyncServer on aiohttp),
for tests/chat_servers.rs and scripts/bench-ws.sh.

    python3 tests/peers/socketio_chat.py [--namespace /chat] [--port 0]

What a Socket.IO chat app does: a client connects to the namespace, emits
"join" {room, user} (the server enters it into the room and acknowledges),
then "chat" {text, nonce, ...}; the server gives each message its own id
("m-17") and time, and emits "chat" {id, room, user, text, nonce, ts} to the
room except the sender (skip_sid), acknowledging the sender with {id}.
With --joined-event NAME it also emits NAME to the joiner.

Counts what it saw: GET /stats ->
{connects, disconnects, open, joins, messages, deliveries, acks}, where
deliveries are the chat events emitted (one per other member in the room).

Prints "listening PORT" once ready. Exits when its standard input closes
(the test ended) or after --lifetime seconds, whichever comes first. A
missing package is named on stderr with how to install it (exit 3).
"""

import argparse
import asyncio
import itertools
import os
import sys
import threading
import time


def missing(package, error):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.stderr.write(
        f"the {package!r} package from PyPI is not installed ({error}): run .ci/run, "
        f"or pip install --target {os.path.join(here, 'python_modules')} {package}\n"
    )
    sys.exit(3)


try:
    import socketio
except ImportError as e:
    missing("python-socketio", e)
try:
    from aiohttp import web
except ImportError as e:
    missing("aiohttp", e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespace", default="/chat")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--joined-event", default=None)
    ap.add_argument("--ping-interval", type=float, default=25)
    ap.add_argument("--ping-timeout", type=float, default=20)
    ap.add_argument("--lifetime", type=float, default=300)
    ap.add_argument("--ignore-stdin", action="store_true", help="run for --lifetime (benchmarks)")
    args = ap.parse_args()
    ns = args.namespace

    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        logger=False,
        engineio_logger=False,
    )
    app = web.Application()
    sio.attach(app)
    stats = dict(connects=0, disconnects=0, open=0, joins=0, messages=0, deliveries=0, acks=0)
    ids = itertools.count(1)

    @sio.on("connect", namespace=ns)
    async def connect(sid, environ, auth=None):
        stats["connects"] += 1
        stats["open"] += 1

    @sio.on("disconnect", namespace=ns)
    async def disconnect(sid, reason=None):
        stats["disconnects"] += 1
        stats["open"] -= 1

    @sio.on("join", namespace=ns)
    async def join(sid, data):
        room, user = str(data["room"]), str(data.get("user", sid))
        await sio.enter_room(sid, room, namespace=ns)
        await sio.save_session(sid, {"room": room, "user": user}, namespace=ns)
        stats["joins"] += 1
        if args.joined_event:
            await sio.emit(args.joined_event, {"room": room, "user": user}, to=sid, namespace=ns)
        return {"room": room}

    @sio.on("chat", namespace=ns)
    async def chat(sid, data):
        session = await sio.get_session(sid, namespace=ns)
        room = session.get("room")
        if room is None:
            return {"error": "join a room first"}
        stats["messages"] += 1
        data = data if isinstance(data, dict) else {"text": data}
        msg = {
            "id": f"m-{next(ids)}",
            "room": room,
            "user": session["user"],
            "text": data.get("text", ""),
            "ts": int(time.time() * 1000),
        }
        if "nonce" in data:
            msg["nonce"] = data["nonce"]
        others = sum(1 for p, _ in sio.manager.get_participants(ns, room) if p != sid)
        await sio.emit("chat", msg, room=room, skip_sid=sid, namespace=ns)
        stats["deliveries"] += others
        stats["acks"] += 1
        return {"id": msg["id"]}

    async def stats_route(request):
        return web.json_response(stats)

    app.router.add_get("/stats", stats_route)

    async def run():
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
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

        if not args.ignore_stdin:
            threading.Thread(target=watch_stdin, daemon=True).start()
        try:
            await asyncio.wait_for(done.wait(), args.lifetime)
        except asyncio.TimeoutError:
            pass
        await runner.cleanup()

    asyncio.run(run())


if __name__ == "__main__":
    main()
