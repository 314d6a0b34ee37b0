"""Operator views over the recorded files, one module per ``collector`` command: ``status``,
``tail``, ``stats``, ``coverage`` (each with its ``cli_*`` entry point). Under them: ``table``
(formatting), ``scope`` (venues asked for, clock), ``recent`` (the newest records of a stream),
``follow`` (a stream's files as they are written)."""
