"""netdsl: a small language and compiler for neural-network architectures."""

from .api import Model, load
from .compiler import compile_file, compile_text
from .errors import NetdslError

__version__ = "0.1.0"
__all__ = ["compile_file", "compile_text", "load", "Model", "NetdslError", "__version__"]
