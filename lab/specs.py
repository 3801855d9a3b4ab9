"""Specs: a piece of code (an optimizer factory, a model factory) or a data file named by a string,
with its identity, a hash of its source, so that results computed with it are recomputed when it
changes and never otherwise.

A spec is a built-in name (``"adam"``, ``"cnn1d"``), ``"module:attr"`` (any importable module;
``"optax:adam"``, ``"optax:contrib.muon"``), or, from Python, the callable itself. One rule gives
every piece of code its identity (details in ``docs/sweeps.md``, "Identity"):

- code in a module file: the SHA-256 of that file (the module that *defines* the object);
- code defined in a script, a notebook or inside a function: the SHA-256 of the function's own
  source, its default values and the simple values it closes over.

An object's identity is taken once, when it is first resolved, and kept while that object lives:
it names the code that was loaded. Editing a module's file changes the identity of what is
imported after it (a new process, or ``importlib.reload``), not of the code already running.

A :class:`Spec` is the spec string itself (a ``str``), carrying ``source`` (that hash) and the
resolved object. A spec read back from saved results carries the saved hash and no object: nothing
is imported until it is needed, and then only if its source has not changed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import math
import os
import sys
import weakref
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Spec", "file_digest", "from_callable", "from_string", "kwargs_dict", "module_digest",
           "normalize_kwargs", "saved"]

_SIMPLE = (int, float, str, bool, bytes, type(None))


class Spec(str):
    """A spec string (``"adam"``, ``"my_pkg.opt:my_adam"``, ``"npz:data.npz"``) with its identity.

    Compares and hashes as the string; ``source`` (hex SHA-256) is the identity, compared
    explicitly by whoever needs it (config hashes, compile caches).
    """

    source: str
    _obj: Any

    def __new__(cls, text: str, source: str, obj: Any = None):
        self = super().__new__(cls, text)
        self.source, self._obj = source, obj
        return self

    def __reduce__(self):  # pickled as a saved spec: the object stays behind
        return saved, (str(self), self.source)

    @property
    def resolved(self) -> bool:
        """Whether the object is at hand (a spec read from saved results is not, until resolved)."""
        return self._obj is not None

    def resolve(self, field: str, builtins: Mapping[str, Any] | None = None) -> Any:
        """The object: the one at hand, else found again by its string; ``ValueError`` naming
        ``field`` if it cannot be found or its source changed since its identity was taken."""
        if self._obj is not None:
            return self._obj
        fresh = from_string(str(self), field, builtins or {})  # (a builtin's name is in builtins)
        if fresh.source != self.source:
            raise ValueError(f"{field}: the source of {str(self)!r} changed since these results were "
                             f"made (saved identity {self.source[:12]}, now {fresh.source[:12]}); "
                             f"make a new config")
        self._obj = fresh._obj
        return self._obj


def saved(text: str, source: str) -> Spec:
    """A spec read back from saved results: its string and identity, nothing imported."""
    return Spec(text, source)


def from_string(text: str, field: str, builtins: Mapping[str, Any], what: str = "name") -> Spec:
    """Resolve ``"name"`` (a key of ``builtins``) or ``"module:attr.path"``; ``ValueError`` naming
    ``field`` otherwise (no colon and no such name, an empty part, a module that cannot be imported,
    a missing attribute)."""
    if text in builtins:
        obj = builtins[text]
        return Spec(text, _identity(obj, getattr(obj, "__module__", None), field), obj)
    if ":" not in text:
        valid = ", ".join(builtins)
        raise ValueError(f"{field}: unknown {what} {text!r}; valid: {valid}, or 'module:attr' for your own")
    module_name, _, attr = text.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ValueError(f"{field}: expected 'module:attr' (e.g. 'my_pkg.opt:my_adam'), got {text!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ValueError(f"{field}: cannot import {module_name!r} for {text!r} ({err})") from None
    except Exception as err:  # noqa: BLE001 - the user's module failed while importing
        raise ValueError(f"{field}: importing {module_name!r} raised {type(err).__name__}: "
                         f"{_one_line(err)}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{field}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return Spec(text, _identity(obj, module_name, field), obj)


def from_callable(obj: Callable, field: str, builtins: Mapping[str, Any] | None = None) -> Spec:
    """The spec of a callable passed from Python: its name if it is one of ``builtins``, else
    ``"module:qualname"``; with its identity."""
    if not callable(obj):
        raise ValueError(f"{field}: expected a name, 'module:attr' or a callable, got {obj!r}")
    for name, builtin in (builtins or {}).items():
        if builtin is obj:
            return from_string(name, field, builtins)
    module = getattr(obj, "__module__", None) or "__main__"
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return Spec(f"{module}:{name}", _identity(obj, module, field), obj)


def normalize_kwargs(kwargs, field: str) -> tuple[tuple[str, Any], ...]:
    """A factory's keyword arguments (a dict or pairs) as sorted, hashable pairs: values are
    numbers, strings, bools, None and lists of them (as tuples); ``ValueError`` naming ``field``."""
    items = kwargs.items() if isinstance(kwargs, Mapping) else kwargs
    try:
        out = tuple((k, _hashable(v)) for k, v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: expected a dict of numbers, strings, bools, None and lists of them, "
                         f"got {kwargs!r}") from None
    names = [k for k, _ in out]
    if not all(isinstance(k, str) for k in names):
        raise ValueError(f"{field}: names must be strings, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"{field}: repeated names in {names}")
    return tuple(sorted(out))


def kwargs_dict(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """:func:`normalize_kwargs`'s pairs as a JSON-ready dict (tuples as lists)."""
    return {k: _jsonable(v) for k, v in pairs}


def _hashable(v):
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(v)
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise TypeError(v)


def _jsonable(v):
    return [_jsonable(x) for x in v] if isinstance(v, tuple) else v


# ----------------------------------------------------------------------------- identity


def _identity(obj: Any, module: str | None, field: str) -> str:
    try:
        return identity(obj, fallback_module=module)
    except ValueError as err:
        raise ValueError(f"{field}: {err}") from None


_IDENTITIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # object -> its identity


def identity(obj: Any, fallback_module: str | None = None) -> str:
    """The hex SHA-256 that identifies ``obj``'s code (see the module docstring), taken the first
    time ``obj`` is seen and kept while it lives."""
    try:
        return _IDENTITIES[obj]
    except (KeyError, TypeError):  # TypeError: an object that cannot be weakly referenced
        pass
    digest = _identity_now(obj, fallback_module)
    try:
        _IDENTITIES[obj] = digest
    except TypeError:
        pass
    return digest


def _identity_now(obj: Any, fallback_module: str | None) -> str:
    if _is_script_code(obj):
        return function_digest(obj)
    module = inspect.getmodule(obj) or sys.modules.get(fallback_module or "")
    digest = module_digest(module) if module is not None else None
    if digest is None:
        try:
            return function_digest(obj)
        except (OSError, TypeError):
            raise ValueError(f"cannot read the source of {obj!r}, which its identity needs") from None
    return digest


def _is_script_code(obj: Any) -> bool:
    """Defined in a script or notebook (``__main__``) or inside a function: identified by its own
    source, not its file's."""
    fn = inspect.unwrap(obj) if callable(obj) else obj
    if not (inspect.isfunction(fn) or inspect.isclass(fn)):
        return False
    return fn.__module__ == "__main__" or "<locals>" in fn.__qualname__


def module_digest(module) -> str | None:
    """SHA-256 of the file a module was loaded from (its source, or the compiled file), or None."""
    try:
        path = inspect.getsourcefile(module) or getattr(module, "__file__", None)
    except TypeError:  # a built-in module
        path = None
    if not path or not os.path.isfile(path):
        return None
    return file_digest(path)


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes (cached on its path, size and modification time)."""
    st = os.stat(path)
    return _file_digest(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the cache key only: a changed file is read again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def function_digest(fn: Any, depth: int = 0) -> str:
    """SHA-256 of a function's source, its defaults and the simple values (or functions) it closes
    over: what a function defined in a script computes with."""
    fn = inspect.unwrap(fn)
    parts = [inspect.getsource(fn)]
    for value in (getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None)):
        parts.append(_value_text(value, depth))
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            parts.append(_value_text(cell.cell_contents, depth))
        except ValueError:  # an empty cell
            parts.append("<empty>")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _value_text(value: Any, depth: int) -> str:
    if isinstance(value, _SIMPLE):
        return repr(value)
    if isinstance(value, tuple | list):
        return "(" + ",".join(_value_text(v, depth) for v in value) + ")"
    if isinstance(value, dict):
        items = sorted(value.items(), key=repr)
        return "{" + ",".join(f"{k!r}:{_value_text(v, depth)}" for k, v in items) + "}"
    if depth < 3 and (inspect.isfunction(value) or inspect.isclass(value)):
        try:
            return identity(value) if not _is_script_code(value) else function_digest(value, depth + 1)
        except (OSError, TypeError, ValueError):
            pass
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
