"""Error kinds shared by converters and extractors.

The batch decides whether to retry from the kind alone: an ``InputError`` means the file itself
is bad or unsupported (retrying cannot help); a ``TransientError`` means the environment failed
(I/O, a timeout) and the same work may succeed later.
"""


class CadpipeError(Exception):
    """Base of every error cadpipe raises on purpose."""

    permanent = True


class InputError(CadpipeError):
    """The input cannot be processed as it is: corrupt, empty of data, or of an unsupported kind."""

    permanent = True


class TransientError(CadpipeError):
    """A fault outside the input (I/O, resources, time); the same work may succeed on retry."""

    permanent = False
