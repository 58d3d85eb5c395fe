# The browser worker runs this script with Pyodide inside a headless Chromium
# page. Pyodide and the hypha-rpc client come from the Hypha server itself, so
# nothing is downloaded; `hypha_rpc` is a small module that bridges to the
# page's JavaScript client. What api.export receives becomes the app's
# "default" service. Only the Python standard library can be imported here.
import asyncio
import os
import platform

from hypha_rpc import api

print("hello from the web-python app in", os.environ["HYPHA_WORKSPACE"])


def hello(name):
    return f"hello {name} from {os.environ['HYPHA_APP_ID']} (Python {platform.python_version()})"


async def fib(n):
    a, b = 0, 1
    for _ in range(int(n)):
        a, b = b, a + b
        await asyncio.sleep(0)
    return a


api.export({"name": "Hello Web Python", "hello": hello, "fib": fib})
