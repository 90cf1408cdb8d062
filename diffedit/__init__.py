__version__ = "0.0.1"

# The three functions most people need, imported on first use: `import diffedit` (and so `diffedit --help`) stays
# quick because torch and diffusers load only when a function is asked for.
_top = dict(load_pipe='core', get_mask='mask', diffedit='edit', DiffEditPipeline='pipeline')
__all__ = list(_top)

def __getattr__(name):
    if name in _top:
        from importlib import import_module
        return getattr(import_module(f'.{_top[name]}', __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def __dir__(): return sorted(list(globals()) + __all__)
