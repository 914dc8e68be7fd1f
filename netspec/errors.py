"""Errors raised by the netspec package. Both are ValueErrors: bad input, not a bug."""


class CaffeFormatError(ValueError):
    """A Caffe file or text that cannot be read as the message it should hold.

    The message names the source (a path, or "<text>" for an inline string) and, for
    text, the line and column, so it reads like a compiler error: `train.prototxt:12:5: ...`.
    The parts are kept as attributes for callers that want them.
    """

    def __init__(self, message, source=None, line=None, column=None, field=None):
        super().__init__(message)
        self.source = source
        self.line = line
        self.column = column
        self.field = field


class NetDefinitionError(ValueError):
    """A net that parses but is not a valid Caffe net (bad include/exclude rules, a bottom
    blob that nothing produces, ...). The message names the layer and blob involved."""
