"""A python-eval app that needs nothing but the standard library.

The worker passes the connection details in HYPHA_* environment variables;
this app only reports them and does a little work, so that `hypha run`
shows its output streaming and its status turning to completed.
"""
import os
import platform
import time

print(f"Hello from a python-eval app on Python {platform.python_version()}!")
print(f"app id: {os.environ.get('HYPHA_APP_ID')}, workspace: {os.environ.get('HYPHA_WORKSPACE')}")
print(f"server: {os.environ.get('HYPHA_SERVER_URL')}")
total = 0
for i in range(1, 4):
    total += i * i
    print(f"step {i}: running total {total}", flush=True)
    time.sleep(0.2)
print("done")
