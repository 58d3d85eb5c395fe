"""hypha_rpc for web-python apps: a bridge to the page's JavaScript client.

The browser worker's web-python page connects with the JavaScript hypha-rpc
client served by the app's server and installs this module, so a script
written against the Python hypha-rpc API (``from hypha_rpc import api``,
``api.export(...)``, ``await api.get_service(...)``) runs with nothing
installed and no network. Values cross the bridge as plain data: dicts,
lists, str, numbers, bools, None and bytes both ways; Python callables
become JavaScript functions (async ones awaited), JavaScript functions
become Python callables whose calls return awaitables when the JavaScript
function answers with a promise.
"""

import asyncio
import inspect
import json
import sys
import traceback
import types

import js
from pyodide.ffi import JsProxy, create_proxy, to_js

try:
    from pyodide.ffi import jsnull as _jsnull
except ImportError:  # older Pyodide: null arrives as None
    _jsnull = None

__all__ = ["api", "connect_to_server", "ObjectProxy", "ready"]

_MAX_DEPTH = 64
_bridge = None  # the page's JavaScript helpers, set by _init
_client = None  # the JavaScript hypha-rpc module
_manifest = {}
_pending = []  # export tasks of the app's script, awaited before "ready"

api = None  # the connected server, set by _init before the app's script runs
ready = None  # the last export's task, as upstream's hypha_rpc.ready


class ObjectProxy(dict):
    """A dict whose keys are also attributes (as upstream's ObjectProxy)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


def _camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


# --- JavaScript to Python -------------------------------------------------


def _from_js(value, depth=0):
    if value is None or value is _jsnull:
        return None
    if not isinstance(value, JsProxy):
        return value
    kind = _bridge.kind(value)
    if kind == "none":
        return None
    if kind == "function":
        return _js_callable(value)
    if kind == "promise":
        return asyncio.ensure_future(_await_js(value))
    if depth >= _MAX_DEPTH:
        return RemoteObject(value)
    if kind == "array":
        return [_from_js(v, depth + 1) for v in value]
    if kind == "bytes":
        return value.to_bytes()
    if kind == "plain":
        return ObjectProxy(
            (k, _from_js(js.Reflect.get(value, k), depth + 1))
            for k in _bridge.keys(value)
        )
    return RemoteObject(value)


async def _await_js(promise):
    return _from_js(await promise)


def _js_callable(fn):
    """A JavaScript function as a Python callable. Keyword arguments go as
    hypha-rpc's trailing keyword object (``_rkwargs``)."""

    def call(*args, **kwargs):
        jsargs = [_to_js(a) for a in args]
        if kwargs:
            kw = dict(kwargs)
            kw["_rkwargs"] = True
            jsargs.append(_to_js(kw))
        return _from_js(fn(*jsargs))

    call.__name__ = str(getattr(fn, "name", "") or "js_function")
    call._js = fn
    return call


class RemoteObject:
    """A JavaScript object reached lazily: attribute (or item) access
    converts what it finds; snake_case names fall back to camelCase, so
    ``server.register_service`` finds ``registerService``."""

    def __init__(self, obj):
        object.__setattr__(self, "_js", obj)

    def _lookup(self, name):
        obj = object.__getattribute__(self, "_js")
        for n in (name, _camel(name)):
            v = js.Reflect.get(obj, n)
            if _bridge.kind(v) == "none" and not _bridge.has(obj, n):
                continue
            if _bridge.kind(v) == "function":
                return _js_callable(_bridge.bind(v, obj))
            return _from_js(v)
        raise AttributeError(name)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._lookup(name)

    def __getitem__(self, name):
        try:
            return self._lookup(name)
        except AttributeError:
            raise KeyError(name) from None

    def __contains__(self, name):
        return bool(_bridge.has(object.__getattribute__(self, "_js"), name))

    def __dir__(self):
        return list(_bridge.keys(object.__getattribute__(self, "_js")))

    def __repr__(self):
        return "<RemoteObject %s>" % ", ".join(sorted(self.__dir__())[:20])


# --- Python to JavaScript -------------------------------------------------


def _to_js(value, depth=0):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, JsProxy):
        return value
    if isinstance(value, RemoteObject):
        return object.__getattribute__(value, "_js")
    if hasattr(value, "_js") and callable(value):
        return value._js  # a JavaScript function coming back
    if depth >= _MAX_DEPTH:
        raise ValueError("value nested more than %d levels deep" % _MAX_DEPTH)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return to_js(bytes(value))
    if isinstance(value, dict):
        entries = [[str(k), _to_js(v, depth + 1)] for k, v in value.items()]
        return js.Object.fromEntries(to_js(entries))
    if isinstance(value, (list, tuple, set, frozenset)):
        return to_js([_to_js(v, depth + 1) for v in value])
    if callable(value):
        return _py_function(value)
    raise TypeError(
        "cannot send a %s to JavaScript: use dicts, lists, str, numbers, "
        "bools, None, bytes or functions" % type(value).__name__
    )


def _py_function(fn):
    """A Python callable as a JavaScript function for hypha-rpc: arguments
    arrive as Python values (hypha-rpc's keyword object as keyword
    arguments); a coroutine result is run and awaited by the caller."""

    def call(*args):
        pyargs = [_from_js(a) for a in args]
        kwargs = {}
        if pyargs and isinstance(pyargs[-1], dict) and pyargs[-1].get("_rkwargs"):
            kwargs = dict(pyargs.pop())
            del kwargs["_rkwargs"]
        result = fn(*pyargs, **kwargs)
        if inspect.isawaitable(result):
            return asyncio.ensure_future(_finish(result))
        return _to_js(result)

    name = getattr(fn, "__name__", "") or "function"
    doc = inspect.getdoc(fn) or ""
    return _bridge.fn(create_proxy(call), name, doc, to_js(_param_names(fn)))


def _param_names(fn):
    """The names hypha-rpc's JavaScript client maps keyword arguments to
    (it reads them from the function's source text): the parameters that
    can be passed by position, or none when they are not plain names."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    names = [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not all(n.isascii() and n.isidentifier() for n in names):
        return []
    return names


async def _finish(awaitable):
    return _to_js(await awaitable)


# --- the server ---------------------------------------------------------------


def _service_dict(obj):
    """What api.export accepts: a dict, or an object whose public
    attributes are the service's members (as upstream)."""
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, types.ModuleType) or not inspect.isclass(type(obj)):
        raise TypeError("api.export needs a dict or an object, got %r" % (obj,))
    return {a: getattr(obj, a) for a in dir(obj) if not a.startswith("_")}


class Server(RemoteObject):
    """A connection to the Hypha server (the JavaScript client's, reached
    through the bridge), with the Python client's ``export``."""

    def export(self, obj, config=None):
        """Register obj as the app's "default" service. Runs at once; the
        returned task may be awaited (as with the Python client) or not (as
        upstream's web-python scripts do)."""
        global ready
        task = asyncio.ensure_future(self._export(obj, config))
        _pending.append(task)
        ready = task
        return task

    async def _export(self, obj, config):
        svc = _service_dict(obj)
        svc["id"] = "default"
        svc["name"] = svc.get("name") or _manifest.get("name") or "default"
        if not svc.get("description") and _manifest.get("description"):
            svc["description"] = _manifest["description"]
        if config:
            svc["config"] = {**(svc.get("config") or {}), **config}
        register = self._lookup("register_service")
        return await register(svc, {"overwrite": True})


async def connect_to_server(config=None, **kwargs):
    """Connect to a Hypha server with the page's JavaScript client (the
    same server the app runs on unless config names another)."""
    cfg = dict(config or {})
    cfg.update(kwargs)
    server = await _client.connectToServer(_to_js(cfg))
    return Server(server)


# --- used by the page ---------------------------------------------------------


def _init(bridge, client, server, manifest_json):
    global _bridge, _client, api, _manifest
    _bridge, _client = bridge, client
    _manifest = json.loads(manifest_json)
    api = Server(server)


def _format_exception(exc):
    """The traceback without the bridge's own frames."""
    tb = traceback.TracebackException.from_exception(exc)
    tb.stack = traceback.StackSummary.from_list(
        [f for f in tb.stack if not f.filename.endswith(("hypha_rpc/__init__.py", "_base.py"))]
    )
    return "".join(tb.format())


async def _run_app(source, filename):
    """Run the app's script in __main__ (top-level await allowed), then
    wait for the exports it started. Returns None, or the traceback."""
    from pyodide.code import eval_code_async

    ns = sys.modules["__main__"].__dict__
    try:
        await eval_code_async(source, globals=ns, filename=filename)
        while _pending:
            await _pending.pop(0)
    except BaseException as exc:  # SystemExit too: the app did not start
        return _format_exception(exc)
    return None


def _jsonable(value, depth=0):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth >= _MAX_DEPTH:
        return repr(value)
    if isinstance(value, JsProxy):
        value = _from_js(value)
        if isinstance(value, JsProxy):
            return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    return repr(value)


async def _execute(source):
    """execute(): run source in the app's namespace; the value of its last
    expression (awaited when awaitable) as JSON, or the traceback."""
    from pyodide.code import eval_code_async

    ns = sys.modules["__main__"].__dict__
    try:
        value = await eval_code_async(source, globals=ns, filename="<execute>")
        if inspect.isawaitable(value):
            value = await value
        return json.dumps({"value": _jsonable(value)}, allow_nan=False)
    except BaseException as exc:
        return json.dumps({"error": _format_exception(exc)})


# `from hypha_rpc.utils import ObjectProxy`, as with the Python client.
utils = types.ModuleType("hypha_rpc.utils")
utils.ObjectProxy = ObjectProxy
sys.modules["hypha_rpc.utils"] = utils
