"""The persistent compile cache: a second process loads what the first compiled; a cache directory
that cannot be used, a damaged entry or a failed write warns once (:class:`CompileCacheWarning`) and
compiles. Every cache here lives under ``tmp_path``; the process's own setting is put back after
each test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache as jax_cache

from lab import compile_cache
from lab.compile_cache import CompileCacheWarning

SETTINGS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_compilation_cache_max_size")


@pytest.fixture(autouse=True)
def restore_cache_settings():
    before = {name: getattr(jax.config, name) for name in SETTINGS}
    yield
    for name, value in before.items():
        jax.config.update(name, value)
    jax_cache.reset_cache()


@pytest.fixture
def events():
    """Counts of JAX's persistent-cache hits and misses during the test."""
    counts = {"hits": 0, "misses": 0}

    def listen(event, **kwargs):
        for name in counts:
            if event == f"/jax/compilation_cache/cache_{name}":
                counts[name] += 1

    jax.monitoring.register_event_listener(listen)
    yield counts
    jax.monitoring.unregister_event_listener(listen)


def compile_and_run(scale: float):
    """Compile (through the persistent cache, as every program is) a small function new to this
    process and run it."""
    def f(x):
        return jnp.tanh(x @ x.T) * scale

    x = np.arange(12.0, dtype=np.float32).reshape(3, 4)  # numpy: nothing else is compiled
    return np.asarray(jax.jit(f).lower(x).compile()(x))


CHILD = textwrap.dedent("""
    import json, sys
    import jax
    counts = {"hits": 0, "misses": 0}
    def listen(event, **kwargs):
        for name in counts:
            counts[name] += event == f"/jax/compilation_cache/cache_{name}"
    jax.monitoring.register_event_listener(listen)
    from lab import compile_cache
    directory = compile_cache.configure()  # from LAB_COMPILE_CACHE
    from lab.sweep import Problem, SweepConfig, run_sweep
    config = SweepConfig.make(Problem(dataset="moons", hidden=(8,), n_train=60), "adam",
                              {"learning_rate": [1e-2, 3e-2]}, steps=6, batch_size=16, eval_every=3)
    result = run_sweep(config, store_dir=None, quiet=True)
    print(json.dumps({"directory": directory, **counts, "loss": result.train_loss.tolist()}))
""")


def test_a_second_process_loads_the_programs_the_first_one_compiled(tmp_path):
    # Every program is saved (no minimum compile time), so that the second process compiles none.
    env = {**os.environ, "LAB_COMPILE_CACHE": str(tmp_path / "cache"), "JAX_PLATFORMS": "cpu",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    runs = []
    for _ in range(2):
        child = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                               timeout=600)
        assert child.returncode == 0, child.stderr
        runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["directory"] == str(tmp_path / "cache")
    assert first["misses"] > 0 and first["hits"] == 0, first
    assert second["misses"] == 0 and second["hits"] == first["misses"], second  # nothing compiled
    assert second["loss"] == first["loss"]  # the same programs
    assert any(name.startswith("jit_chunk") for name in os.listdir(tmp_path / "cache"))


def test_the_directory_comes_from_the_argument_the_environment_or_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    assert compile_cache.configure() == str(tmp_path / "xdg" / "lab" / "jax")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xdg" / "lab" / "jax")
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
    assert compile_cache.configure() == str(tmp_path / "env") and os.path.isdir(tmp_path / "env")
    assert compile_cache.configure(str(tmp_path / "arg")) == str(tmp_path / "arg")
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.configure() is None and jax.config.jax_compilation_cache_dir is None
    assert compile_cache.configure("OFF") is None


def test_a_directory_that_cannot_be_used_warns_once_and_compiles(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.warns(CompileCacheWarning, match=r"compile cache .*file/cache cannot be used \(NotADir"):
        assert compile_cache.configure(str(tmp_path / "file" / "cache")) is None
    assert jax.config.jax_compilation_cache_dir is None
    np.testing.assert_allclose(compile_and_run(2.0)[0, 0], 2 * np.tanh(14.0))


def test_a_damaged_entry_warns_once_is_replaced_and_the_program_compiled(tmp_path, events):
    directory = str(tmp_path / "cache")
    assert compile_cache.configure(directory) == directory
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    want = compile_and_run(3.0)
    entries = sorted(f for f in os.listdir(directory) if f.endswith("-cache"))
    assert entries and events == {"hits": 0, "misses": 1}
    compile_and_run(3.0)
    assert events == {"hits": 1, "misses": 1}  # read back from the cache
    for name in entries:  # damaged, as by a disk error or a writer killed mid-write
        with open(os.path.join(directory, name), "wb") as f:
            f.write(b"not a compiled program")
    with pytest.warns(CompileCacheWarning, match=r"an entry could not be read .*removed and the pro") as w:
        np.testing.assert_array_equal(compile_and_run(3.0), want)  # compiled, and the entry replaced
        np.testing.assert_array_equal(compile_and_run(3.0), want)  # read back
    assert len(w) == 1
    assert events == {"hits": 2, "misses": 2}
    with open(os.path.join(directory, entries[0]), "rb") as f:
        assert f.read() != b"not a compiled program"


def test_a_failed_write_warns_once_and_the_program_is_used(tmp_path):
    directory = tmp_path / "cache"
    compile_cache.configure(str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    # Without a size limit JAX takes no lock to read, so that reads miss and only the writes fail.
    jax.config.update("jax_compilation_cache_max_size", -1)
    compile_and_run(4.0)  # the cache is in use
    for name in os.listdir(directory):
        os.unlink(directory / name)
    directory.rmdir()
    directory.write_text("a file where the cache was")
    with pytest.warns(CompileCacheWarning, match=r"could not be saved .*used without being saved") as w:
        np.testing.assert_allclose(compile_and_run(5.0)[0, 0], 5 * np.tanh(14.0))
        compile_and_run(6.0)
    assert len(w) == 1


def test_an_entry_left_without_its_access_time_is_removed_and_programs_are_saved_again(tmp_path):
    """A process killed between JAX's two writes of an entry leaves it without its access time; JAX's
    size limit then fails every later save (FileNotFoundError for that time). configure() removes it."""
    directory = tmp_path / "cache"
    directory.mkdir()
    (directory / "jit_f-0123abcd-cache").write_bytes(b"cut short")  # no jit_f-0123abcd-atime
    (directory / "jit_g-4567-cache").write_bytes(b"whole")
    (directory / "jit_g-4567-atime").write_bytes((0).to_bytes(8, "little"))
    assert compile_cache.configure(str(directory)) == str(directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_compilation_cache_max_size", 10**9)  # the size limit that reads access times
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileCacheWarning)
        compile_and_run(7.0)
    names = set(os.listdir(directory))
    assert "jit_f-0123abcd-cache" not in names and {"jit_g-4567-cache", "jit_g-4567-atime"} <= names
    assert len([n for n in names if n.endswith("-cache")]) == 2  # the program compiled here was saved


def test_without_a_size_limit_entries_have_no_access_time_and_are_kept(tmp_path, monkeypatch):
    """JAX writes access times only under its size limit: with the limit off, no entry is an orphan."""
    monkeypatch.setenv("JAX_COMPILATION_CACHE_MAX_SIZE", "-1")
    jax.config.update("jax_compilation_cache_max_size", -1)
    directory = tmp_path / "cache"
    assert compile_cache.configure(str(directory)) == str(directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    compile_and_run(8.0)
    saved = sorted(n for n in os.listdir(directory) if n.endswith("-cache"))
    assert saved and not [n for n in os.listdir(directory) if n.endswith("-atime")]
    compile_cache.configure(str(directory))  # as the next process does
    assert sorted(n for n in os.listdir(directory) if n.endswith("-cache")) == saved
