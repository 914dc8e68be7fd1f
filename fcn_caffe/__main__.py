"""python -m fcn_caffe SCRIPT [ARGS...]   or   python -m fcn_caffe -m MODULE [ARGS...]

Runs an unmodified pycaffe script (or module) as __main__, with sys.argv set as if it had been run directly,
after fcn_caffe.install() has made `import caffe` give this package in every module (as python -m cProfile runs a
script under the profiler). The script's folder comes first on sys.path, as for `python SCRIPT`.
"""
import os
import runpy
import sys

from fcn_caffe.caffe_alias import install


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv == ["-m"]:
        print(__doc__.strip(), file=sys.stderr if not argv or argv == ["-m"] else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    install()
    if argv[0] == "-m":
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    script = argv[0]
    if not os.path.isfile(script):
        print(f"python -m fcn_caffe: can't open file {os.path.abspath(script)!r}", file=sys.stderr)
        return 2
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
