"""netdsl: a small language and compiler for neural-network architectures."""

from .compiler import compile_file, compile_text
from .errors import NetdslError

__version__ = "0.1.0"
__all__ = ["compile_file", "compile_text", "NetdslError", "__version__"]
