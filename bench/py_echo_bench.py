"""Echo calls between two hypha-rpc Python clients through a server (for bench/hotpath.sh).

usage: py_echo_bench.py SERVER_URL [SECONDS] [CONCURRENCY]

One client serves a public echo, another calls it with CONCURRENCY calls in flight.
Prints START once warmed up, then waits half a second (the caller of this script reads
the server's CPU time then), calls for SECONDS, prints DONE, waits half a second again
(the second reading) and prints RESULT <json>. Not a test.
"""
import asyncio
import json
import sys
import time

from hypha_rpc import connect_to_server


async def main(url, seconds, concurrency):
    a = await connect_to_server({"server_url": url, "client_id": "py-bench-serve"})
    svc = await a.register_service(
        {"id": "py-bench-echo", "config": {"visibility": "public"}, "echo": lambda x: x}
    )
    b = await connect_to_server({"server_url": url, "client_id": "py-bench-call"})
    echo = (await b.get_service(svc.id)).echo
    payload = b"0123456789abcdef"
    for _ in range(50):
        await echo(payload)
    print("START", flush=True)
    await asyncio.sleep(0.5)
    lat = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker():
        nonlocal errors
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                await echo(payload)
            except Exception:  # counted, the run goes on
                errors += 1
                continue
            lat.append(time.perf_counter() - t0)

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - t0
    print("DONE", flush=True)
    await asyncio.sleep(0.5)
    lat.sort()
    n = len(lat)
    res = {
        "calls": n,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "calls_per_s": round(n / elapsed, 1),
        "p50_us": round(lat[n // 2] * 1e6) if n else None,
        "p99_us": round(lat[min(n - 1, n * 99 // 100)] * 1e6) if n else None,
    }
    print("RESULT " + json.dumps(res), flush=True)
    for x in (b, a):
        await x.disconnect()


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1],
            float(sys.argv[2]) if len(sys.argv) > 2 else 5,
            int(sys.argv[3]) if len(sys.argv) > 3 else 16,
        )
    )
