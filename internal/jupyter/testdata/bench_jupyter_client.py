"""The reference side of internal/jupyter's benchmarks: the same work done
with jupyter_client in Python, against the same kind of kernel.

usage: bench_jupyter_client.py execute N   -> mean seconds of execute("1+1")
       bench_jupyter_client.py start N     -> mean seconds from start to ready

Prints one line: "<mode> <mean seconds> <n>".
"""
import sys
import time

from jupyter_client.manager import KernelManager


def start(python):
    km = KernelManager()
    # The same command line internal/jupyter runs, without a kernelspec.
    km.kernel_cmd = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def stop(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def main():
    mode, n = sys.argv[1], int(sys.argv[2])
    python = sys.executable
    if mode == "execute":
        km, kc = start(python)
        try:
            for _ in range(20):  # warm up, as the Go benchmark does
                kc.execute_interactive("1+1", output_hook=lambda m: None, timeout=60)
            t = time.perf_counter()
            for _ in range(n):
                # Waits for execute_reply and for iopub idle, collecting the
                # outputs: what Execute does.
                reply = kc.execute_interactive("1+1", output_hook=lambda m: None, timeout=60)
                assert reply["content"]["status"] == "ok"
            mean = (time.perf_counter() - t) / n
        finally:
            stop(km, kc)
    elif mode == "start":
        total = 0.0
        for _ in range(n):
            t = time.perf_counter()
            km, kc = start(python)
            total += time.perf_counter() - t
            stop(km, kc)
        mean = total / n
    else:
        raise SystemExit("unknown mode " + mode)
    print(mode, mean, n)


if __name__ == "__main__":
    main()
