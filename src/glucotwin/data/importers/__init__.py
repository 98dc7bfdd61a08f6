"""One module per file format; each defines ``FORMAT`` (see :mod:`glucotwin.data.formats`)."""
