# The app of examples/hello-k8s. The pod (python:3.12-slim) downloads this
# file from the app's files with its session token and runs it; it connects
# back with the HYPHA_* variables the Kubernetes worker sets.
import asyncio
import os

from hypha_rpc import connect_to_server


async def main():
    server = await connect_to_server({
        "server_url": os.environ["HYPHA_SERVER_URL"],
        "workspace": os.environ["HYPHA_WORKSPACE"],
        "client_id": os.environ["HYPHA_CLIENT_ID"],
        "token": os.environ["HYPHA_TOKEN"],
    })
    print("hello from a pod in", os.environ["HYPHA_WORKSPACE"], flush=True)
    await server.register_service({
        "id": "default",
        "hello": lambda name: f"hello {name} from a pod",
    })
    await server.serve()


asyncio.run(main())
