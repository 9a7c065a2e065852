#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a fixed time in each direction, for
measuring clients against a server with real latency (Exchange Online is tens
of milliseconds away) on one machine.

    python3 tests/bench/delay_proxy.py --listen 127.0.0.1:PORT --to 127.0.0.1:PORT --delay-ms 20

`--delay-ms 20` adds 40 ms to every round trip. Data is forwarded as it
arrives (no added bandwidth limit); each chunk leaves `delay` after it came
in, so a stream keeps its throughput. Prints "ready" once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float):
    """Copies reader to writer, each chunk `delay` seconds after it arrived."""
    queue: asyncio.Queue = asyncio.Queue()

    async def take():
        while True:
            chunk = await reader.read(1 << 16)
            await queue.put((time.monotonic() + delay, chunk))
            if not chunk:
                return

    async def give():
        while True:
            due, chunk = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    try:
        await asyncio.gather(take(), give())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def split(addr: str) -> tuple[str, int]:
    host, port = addr.rsplit(":", 1)
    return host, int(port)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="HOST:PORT to accept connections on")
    ap.add_argument("--to", required=True, help="HOST:PORT of the server")
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    a = ap.parse_args()
    delay = a.delay_ms / 1000
    to_host, to_port = split(a.to)

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter):
        try:
            sr, sw = await asyncio.open_connection(to_host, to_port)
        except OSError:
            cw.close()
            return
        await asyncio.gather(forward(cr, sw, delay), forward(sr, cw, delay))

    host, port = split(a.listen)
    server = await asyncio.start_server(handle, host, port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
