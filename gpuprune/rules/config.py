"""Reading a pruning config: the file, its prune seed, and its connection keys.

Every problem is a one-line :class:`~gpuprune.errors.ConfigError` (or
:class:`~gpuprune.errors.InputError` for an unreadable file) naming the file.
"""

import ast
import json

import numpy as np

from gpuprune.errors import ConfigError, InputError

#: deepest nesting of objects and lists a config may have (Snudda's configs nest about 7 deep).
MAX_CONFIG_DEPTH = 64


def load_config(path):
    """Read a config file; a missing, unreadable or malformed file is an error naming it."""
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except FileNotFoundError:
        raise InputError("config file not found", path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config is not UTF-8 text (byte {exc.start}: {exc.reason})", path) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config is not valid JSON: {exc}", path) from None
    except RecursionError:
        raise ConfigError(f"config nests objects or lists deeper than {MAX_CONFIG_DEPTH} levels", path) from None
    except OSError as exc:
        raise InputError(f"cannot read config file: {exc}", path) from None
    check_depth(config, path)
    return config


def check_depth(config, path, limit=MAX_CONFIG_DEPTH):
    """Raise :class:`ConfigError` if ``config`` nests dicts or lists deeper than ``limit``.

    Iterative, so that the check itself cannot exhaust the stack.
    """
    stack = [(config, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            raise ConfigError(f"config nests objects or lists deeper than {limit} levels", path)
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def check_seed(seed, path=None):
    """Return ``seed`` as a Python int in 0 .. 2**64-1, or raise :class:`InputError` (naming ``path``)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"the random seed must be an integer in 0 .. 2**64-1, got {seed!r}", path)
    seed = int(seed)
    if not 0 <= seed < 2 ** 64:
        raise InputError(f"the random seed must lie in 0 .. 2**64-1, got {seed}", path)
    return seed


def config_seed(config, config_path):
    """The prune seed a config gives (``random_seed.prune``, checked), or None if it gives none."""
    rs = config.get("random_seed") if isinstance(config, dict) else None
    if not isinstance(rs, dict) or "prune" not in rs:
        return None
    if rs["prune"] is None:
        raise ConfigError("random_seed.prune is null; give an integer or remove the key", config_path)
    try:
        return check_seed(rs["prune"])
    except InputError as exc:
        raise ConfigError(f"random_seed.prune: {exc.problem}", config_path) from None


def split_connection_key(con_name, config_path):
    """Snudda's connectivity key ``"Pre,Post"`` or ``"Pre,['A','B']"`` -> ``(pre, [post, ...])``."""
    if not isinstance(con_name, str) or "," not in con_name:
        raise ConfigError(f"connectivity key {con_name!r} is not of the form 'Pre,Post'", config_path)
    pre, post = con_name.split(",", 1)
    if "," in post or post.strip().startswith("["):
        try:
            posts = ast.literal_eval(post)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ConfigError(f"connectivity key {con_name!r}: cannot parse the list of post types",
                              config_path) from None
        if not isinstance(posts, (list, tuple)) or not all(isinstance(p, str) for p in posts):
            raise ConfigError(f"connectivity key {con_name!r}: post types must be a list of names", config_path)
    else:
        posts = [post]
    return pre, list(posts)
