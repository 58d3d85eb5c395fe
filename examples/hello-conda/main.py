"""A conda-jupyter-kernel app that needs nothing but the standard library.

It runs in a Jupyter kernel of its conda environment: what it prints goes to
the session's logs, and the names it defines stay in the kernel, so that
`hypha apps execute SESSION_ID 'greet("you")'` can use them afterwards.
"""
import os
import platform

from IPython.display import display, Markdown

visits = 0


def greet(name):
    global visits
    visits += 1
    return f"Hello {name} from {os.environ.get('HYPHA_APP_ID')} (call {visits})"


print(f"Hello from a conda-jupyter-kernel app on Python {platform.python_version()}!")
print(f"workspace: {os.environ.get('HYPHA_WORKSPACE')}, server: {os.environ.get('HYPHA_SERVER_URL')}")
display(Markdown("| step | square |\n|---|---|\n" + "\n".join(f"| {i} | {i * i} |" for i in range(1, 4))))
print("ready: try greet('you') with hypha apps execute")
