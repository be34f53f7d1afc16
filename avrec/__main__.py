"""``python -m avrec``: the ``avrec`` command line (see :mod:`avrec.cli`)."""

from avrec.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
