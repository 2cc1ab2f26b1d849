"""One module per ``iddpm`` command: each ``run(args, explicit)`` takes parsed flags and calls the library.

Parsing lives above, in ``impl.cli``; nothing here reads ``sys.argv``.
"""

PROG = "iddpm"
