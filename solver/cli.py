"""What `python -m solver.infer` and `python -m solver.score` share: one-line errors and exit statuses, input
checks, and output files that never replace an input, nor an earlier result unless asked.

Exit status: 0 when done; 2 on bad input or a failure (one line `error: ...` naming the file and the cause, no
traceback; FCN_DEBUG=1 in the environment shows the traceback of an internal error); 130 on Ctrl-C. Outputs are
written to a temporary file beside their final name and renamed into place, so what was completed before an error
or an interruption is kept whole, and nothing is left half written.
"""
import contextlib
import errno
import os
import signal
import sys

from layers.blob import MemoryLimitError


def run(main, argv=None):
    """Call main(argv) as a command: the exit status, with any failure reported as one `error: ...` line. SIGTERM
    ends it as Ctrl-C does, after cleaning up (status 143)."""
    previous = None
    with contextlib.suppress(ValueError):            # not the main thread: leave signals alone
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        main(argv)
    except BrokenPipeError:                          # the reader of our output went away (| head): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); the outputs written before it are complete and kept", file=sys.stderr)
        return 130
    except (ValueError, TypeError, NotImplementedError, OSError, MemoryError) as e:   # CaffeFormatError, ImageError,
        print(f"error: {describe(e)}", file=sys.stderr)                              # MemoryLimitError included
        return 2
    except Exception as e:                           # a bug: one line still, the traceback with FCN_DEBUG=1
        if os.environ.get("FCN_DEBUG"):
            raise
        print(f"error: internal error ({type(e).__name__}: {e}); please report it with the command that gave it "
              f"(FCN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _terminate(signum, frame):
    print("error: terminated (SIGTERM); the outputs written before it are complete and kept", file=sys.stderr)
    raise SystemExit(128 + signum)


def describe(error):
    """A one-line message for `error`, naming the file for OS errors ("x.png: No space left on device")."""
    if isinstance(error, OSError) and error.strerror:
        name = error.filename
        if name is None or str(name) in error.strerror:
            return error.strerror
        return f"{name}: {error.strerror}"
    if isinstance(error, MemoryError) and not isinstance(error, MemoryLimitError):
        return f"out of memory ({error or 'no details'})"
    return str(error).strip()


def prefixed(error, prefix):
    """`error` again, its message led by `prefix` (the image or file it is about); a ValueError when its type
    cannot be made from one message."""
    message = f"{prefix}: {error}"
    try:
        return type(error)(message)
    except Exception:
        return MemoryLimitError(message) if isinstance(error, MemoryError) else ValueError(message)


def require_file(path, what):
    """Refuse, naming `what` and `path`, an input file that is missing, a folder, empty or unreadable."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"{what} {path} is a folder, not a file")
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"{what} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, f"{what} {path}: not readable (permission denied)")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{what} {path}: the file is empty (0 bytes)")


def require_folder(path, what):
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"{what} {path}: no such folder")
    if not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, f"{what} {path} is a file, not a folder")


def output_folder(path, option):
    """Create the output folder `path` if needed; refuse a file in its place or a folder that cannot be written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(errno.EEXIST, f"{option} {path} is a file, not a folder")
    os.makedirs(path, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{option} {path}: cannot write there (permission denied)")


def refuse_existing(paths, inputs=(), overwrite=False, option="--overwrite"):
    """Refuse before any work: an output that is one of the `inputs` (always), or that exists (unless
    `overwrite`)."""
    sources = {identity(p) for p in inputs}
    for path in paths:
        if identity(path) in sources:
            raise FileExistsError(errno.EEXIST, f"{path} is one of the inputs: it is never written over; choose "
                                                f"another output folder")
    existing = [p for p in paths if os.path.lexists(p)]
    if existing and not overwrite:
        shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise FileExistsError(errno.EEXIST, f"{shown} exist{'s' if len(existing) == 1 else ''} already (an earlier "
                                            f"run?): give {option} to replace {'it' if len(existing) == 1 else 'them'}"
                                            f", or choose another output folder")


def identity(path):
    """What makes two paths one file: (device, inode) for an existing file, else the resolved path."""
    try:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    except OSError:
        return os.path.normcase(os.path.realpath(path))


def publish(path, write, overwrite=False):
    """write(tmp) a temporary file beside `path`, then give it the name `path`: replacing an existing file only
    with `overwrite`. An error or Ctrl-C leaves no temporary file and `path` as it was."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    tmp = os.path.join(folder, f".{stem}.{os.getpid()}.tmp{ext}")
    try:
        try:
            write(tmp)
        except OSError as e:                # name the output, not the temporary file
            if e.errno is None:
                raise
            raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from None
        if overwrite:
            os.replace(tmp, path)
            return path
        try:
            os.link(tmp, path)              # atomic, and never replaces: an existing `path` is an error
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, f"{path} appeared while this ran; it was not replaced") from None
        except OSError:                     # a file system without hard links
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, f"{path} appeared while this ran; it was not replaced") \
                    from None
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return path
