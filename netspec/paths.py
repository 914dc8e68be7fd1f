"""Paths: whether a string names a file or is prototxt text, and where the files a net or solver names are found.

One home for the rules the Net, the solvers, netspec.io and the data layers share:

- source_path(src): the file `src` names, or None when it is prototxt text (or a message). read_net and
  read_solver, the Net (its folder) and the solvers (theirs) all decide by it.
- find_file(path, bases, what): the first existing base/path, else a FileNotFoundError naming every place looked.
- resolve(path, base): a path inside a net (a data source, a mean file): under `base` when it exists there, else as
  written, the working directory (Caffe's rule, with the net's or solver's folder tried first).

Caffe takes every relative path from the working directory. Trying a base folder first (the solver file's folder
when a solver builds the nets, the prototxt's folder for a Net built from a file) lets a model folder run from
anywhere; pycaffe's classes pass the working directory as that folder, as Caffe behaves.
"""
import os
from typing import Iterable, Optional, Union

# A string ending like this is meant as a file name, never as prototxt text.
TEXT_SUFFIXES = (".prototxt", ".pbtxt", ".pt", ".txt", ".solver")


def source_path(src) -> Optional[str]:
    """The file `src` names, or None when `src` is prototxt text or a message.

    A PathLike is a path. A str is text when it holds a newline or '{', or is blank; otherwise it names a file when
    that file exists, when it ends like a prototxt (TEXT_SUFFIXES) or when it has no ':' (every non-empty
    prototxt has one): a missing file then, not text.
    """
    if isinstance(src, os.PathLike):
        return os.fspath(src)
    if not isinstance(src, str) or "\n" in src or "{" in src or not src.strip():
        return None
    if os.path.exists(src) or src.lower().endswith(TEXT_SUFFIXES) or ":" not in src:
        return src
    return None


def folder_of(path: Optional[str]) -> Optional[str]:
    """The absolute folder holding `path`, or None for None."""
    return os.path.dirname(os.path.abspath(path)) if path else None


def find_file(path: str, bases: Iterable[Optional[str]], what: str) -> str:
    """The first of base/path (path as written for base None, the working directory) that is a file; an absolute
    path is taken as it is. Else FileNotFoundError: "{what} '{path}' not found (looked for ...)"."""
    if os.path.isabs(path):
        candidates = [path]
    else:
        candidates = list(dict.fromkeys(path if base is None else os.path.join(base, path) for base in bases))
    return first_file(candidates, f"{what} '{path}' not found")


def first_file(candidates: Iterable[str], missing: str) -> str:
    """The first candidate that is a file; else FileNotFoundError: "{missing} (looked for ...)", each place once
    (IsADirectoryError when a candidate is a directory)."""
    candidates = list(candidates)
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    folders = [c for c in candidates if os.path.isdir(c)]
    if folders:                                   # the real cause, not "not found"
        raise IsADirectoryError(f"{missing} as a file: {os.path.abspath(folders[0])} is a directory")
    looked = ", ".join(dict.fromkeys(os.path.abspath(c) for c in candidates))
    raise FileNotFoundError(f"{missing} (looked for {looked})")


def resolve(path: Union[str, os.PathLike], base: Optional[str]) -> str:
    """A relative path from a net definition: under `base` if it exists there, else as written (the working
    directory, as Caffe). What resolves nowhere comes back as written, so that the caller's error names it."""
    if path and base and not os.path.isabs(path):
        candidate = os.path.join(base, path)
        if os.path.exists(candidate):
            return candidate
    return path


def searched(base: Optional[str]) -> str:
    """Where resolve(path, base) looks, for error messages."""
    return (f"looked under {base} and the working directory {os.getcwd()}" if base
            else f"relative paths are taken from the working directory {os.getcwd()}")
