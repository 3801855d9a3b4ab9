"""The persistent compile cache: JAX's own (``jax_compilation_cache_dir``) in a per-user directory, so
that a new process loads the programs an earlier one compiled instead of compiling them again.

:func:`configure` turns it on or off (the command line's ``--compile-cache DIR|off``; the environment
variable ``LAB_COMPILE_CACHE``). A cache that cannot be used never fails a command: it warns once
(:class:`CompileCacheWarning`) and compiles as if there were none. How it behaves: ``docs/sweeps.md``,
"The compile cache".
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings

import jax

__all__ = ["ENV", "MAX_BYTES", "MIN_COMPILE_SECONDS", "CompileCacheWarning", "configure", "default_directory"]

ENV = "LAB_COMPILE_CACHE"  # a directory, or "off"
MIN_COMPILE_SECONDS = 0.1  # programs that compile faster than this are not saved (JAX's default: 1 s)
MAX_BYTES = 2 << 30  # least recently used programs are removed past this size (needs the filelock package)

_state = {"warned": False}  # whether this process warned since the last configure()


class CompileCacheWarning(UserWarning):
    """The compile cache could not be read or written; programs are compiled as if there were none."""


def default_directory() -> str:
    """``$XDG_CACHE_HOME/lab/jax``, or ``~/.cache/lab/jax``: one cache per user."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lab", "jax")


def configure(directory: str | None = None) -> str | None:
    """Use the persistent compile cache in ``directory``, or turn it off (``"off"``).

    Args:
        directory: where compiled programs are kept; default ``LAB_COMPILE_CACHE``, else JAX's own
            ``JAX_COMPILATION_CACHE_DIR``, else :func:`default_directory`. ``"off"``: no cache.

    Returns:
        the directory in use, or None when the cache is off or cannot be used (a directory that
        cannot be created or written: :class:`CompileCacheWarning`, once).
    """
    _state["warned"] = False
    setting = directory if directory is not None else os.environ.get(ENV) or None
    if setting is None:
        setting = os.environ.get("JAX_COMPILATION_CACHE_DIR") or default_directory()
    path = None if str(setting).strip().lower() == "off" else os.path.abspath(os.path.expanduser(setting))
    if path is not None:
        try:
            os.makedirs(path, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as err:
            _warn(f"compile cache {path} cannot be used ({type(err).__name__}: {err}); compiling without it")
            path = None
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()  # JAX reads its settings once per process: read them again
    jax.config.update("jax_compilation_cache_dir", path)
    if path is not None:
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
        if "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ and _has_filelock():
            jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
        _remove_orphans(path)
        _guard()
    return path


def _remove_orphans(path: str) -> None:
    """With JAX's size limit on (the only case where JAX writes access times), remove entries without
    their access-time file: what a process killed between JAX's two writes of an entry leaves (possibly
    cut short). The size limit reads every entry's access time before it saves a program, so one orphan
    would make every later save fail. Done under JAX's own lock on the directory."""
    if jax.config.jax_compilation_cache_max_size in (None, -1) or not _has_filelock():
        return  # no size limit: entries have no access times, and none is an orphan
    import filelock

    try:
        with filelock.FileLock(os.path.join(path, ".lockfile"), timeout=5):
            names = set(os.listdir(path))
            for name in names:
                if name.endswith("-cache") and f"{name[:-len('-cache')]}-atime" not in names:
                    os.unlink(os.path.join(path, name))
    except (OSError, filelock.Timeout):
        pass  # another process holds the cache, or it cannot be changed: JAX's handling stays


def _has_filelock() -> bool:
    try:
        import filelock  # noqa: F401  (JAX needs it to keep the cache within a size)
    except ImportError:
        return False
    return True


def _warn(message: str) -> None:
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(message, CompileCacheWarning, stacklevel=3)


def _guard() -> None:
    """Wrap JAX's reads and writes of cache entries so that a failure (a damaged entry, a full or
    read-only disk) warns once with :class:`CompileCacheWarning` and counts as a miss, instead of
    JAX's own warning at every entry; a damaged entry is removed, so the next compile replaces it.
    Done once per process; where JAX's internals differ, JAX's own handling stays."""
    from jax._src import compilation_cache as jax_cache

    read, write = (getattr(jax_cache, name, None) for name in ("get_executable_and_time",
                                                                 "put_executable_and_time"))
    if read is None or write is None or getattr(read, "lab_guard", False):
        return

    @functools.wraps(read)
    def guarded_read(cache_key, *args, **kwargs):
        try:
            return read(cache_key, *args, **kwargs)
        except jax_cache.CacheVerificationError:
            raise
        except Exception as err:  # noqa: BLE001  (whatever is wrong with the entry, compile instead)
            directory = jax.config.jax_compilation_cache_dir
            if directory:
                try:
                    os.unlink(os.path.join(directory, f"{cache_key}-cache"))
                except OSError:
                    pass
            _warn(f"compile cache {directory}: an entry could not be read ({type(err).__name__}: {err}); "
                  f"it is removed and the program compiled")
            return None, None

    @functools.wraps(write)
    def guarded_write(*args, **kwargs):
        try:
            return write(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            directory = jax.config.jax_compilation_cache_dir
            _warn(f"compile cache {directory}: a compiled program could not be saved "
                  f"({type(err).__name__}: {err}); it is used without being saved")
            return None

    guarded_read.lab_guard = True
    jax_cache.get_executable_and_time = guarded_read
    jax_cache.put_executable_and_time = guarded_write
