__version__ = "0.0.1"

from .core import load_pipe
from .mask import get_mask
from .edit import diffedit
