"""Load a user's Flax module from `path/to/file.py:Name` or `package.module:Name`.

`Name` may be a Linen module class or a factory function; `kwargs` go to its constructor. Used
by `cnnjax summary file.py:ResNet18 --input 224x224x3 --kwargs '{"num_classes": 10}'`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from cnnjax.errors import CnnjaxError


class ModuleRefError(CnnjaxError, ValueError):
    """A module reference that cannot be loaded (missing file, missing name, bad kwargs)."""


def is_module_ref(text: str) -> bool:
    """Whether `text` looks like `file.py:Name` or `pkg.mod:Name` (not a spec or zoo name)."""
    if ":" not in text or text.strip().startswith("{"):
        return False
    target, _, name = text.rpartition(":")
    return bool(
        name.isidentifier()
        and target
        and (target.endswith(".py") or "." in target or target.isidentifier())
    )


def load_module(ref: str, kwargs: dict[str, Any] | None = None) -> Any:
    """The object `ref` names, called with `kwargs` (a class or factory) - a Flax module."""
    target, _, name = ref.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ModuleRefError(f"module file not found: {path}")
        mod_name = f"cnnjax_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ModuleRefError(f"cannot import {path} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        sys.path.insert(0, str(path.parent.resolve()))
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            raise ModuleRefError(f"importing {path} failed: {type(err).__name__}: {err}") from err
        finally:
            sys.path.remove(str(path.parent.resolve()))
    else:
        cwd = str(Path.cwd())
        added = cwd not in sys.path  # as `python -m` does: modules under the working directory
        if added:
            sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(target)
        except ImportError as err:
            raise ModuleRefError(f"cannot import {target!r}: {err}") from err
        finally:
            if added:
                sys.path.remove(cwd)
    obj = getattr(module, name, None)
    if obj is None:
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        raise ModuleRefError(
            f"{target} has no {name!r}; it defines: {', '.join(public[:20]) or 'nothing public'}"
        )
    if not callable(obj):
        raise ModuleRefError(f"{ref} is not a class or a function")
    try:
        return obj(**(kwargs or {}))
    except TypeError as err:
        raise ModuleRefError(f"{ref}({', '.join(kwargs or {})}): {err}") from err
