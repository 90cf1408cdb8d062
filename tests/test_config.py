"""One source of truth: every knob of a DiffEdit edit is a field of `diffedit.config.DiffEditConfig`, checked once when a config is made; the
lesson functions' defaults, the command line's options and the app's controls start from `DEFAULTS`; the engine takes a config and keyword
overrides of its fields; and the package's modules import each other bottom-up, without a circle."""
import inspect, sys
from pathlib import Path
import pytest
from diffedit.config import DEFAULTS, DiffEditConfig

PKG = Path(__file__).parent.parent/'diffedit'

def _defaults(fn):
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}

def _knobs_in(fn, names=None):
    "The parameters of `fn` that are knobs (by the config's name, or by `names`: {parameter: knob}), with their defaults."
    d = _defaults(fn); names = names or {}
    return {names.get(k, k): v for k, v in d.items() if names.get(k, k) in DiffEditConfig.__dataclass_fields__}

def _functions():
    from diffedit import mask, encode, decode, edit, core, interpolate
    return [mask.noise_diff, mask.noise_diffs, mask.mask_map, mask.get_mask, mask.soft_map, mask.binarize, mask.mask_timestep, encode.ddim_encode,
            encode.reconstruct, decode.masked_decode, edit.pixel_mask, core.sample, core.denoise, core.ddim_denoise, core.img2img,
            core.ddim_steps, interpolate.interpolate_frames]

@pytest.mark.parametrize('fn', _functions(), ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_signatures_agree(fn):
    encoding = fn.__name__ in ('ddim_encode', 'reconstruct')                # the encoding's own prompt and guidance
    knobs = _knobs_in(fn, dict(prompt='encode_prompt', guidance_scale='encode_guidance') if encoding else None)
    assert knobs, f"{fn.__name__} has no knob among its parameters"
    for k, v in knobs.items(): assert v == getattr(DEFAULTS, k), f"{fn.__name__}({k}={v!r}) but DEFAULTS.{k} = {getattr(DEFAULTS, k)!r}"

def test_engine_takes_the_config():
    "edit_image, diffedit, generate_mask and run_ours take `config` and keyword overrides of its fields, checked by the config, not a retyped list."
    from diffedit.edit import edit_image, diffedit, generate_mask
    from diffedit.evaluate import run_ours
    for fn in (edit_image, diffedit, generate_mask, run_ours):
        ps = inspect.signature(fn).parameters
        assert 'config' in ps, fn.__name__
        assert not set(ps) & set(DiffEditConfig.__dataclass_fields__), (fn.__name__, set(ps) & set(DiffEditConfig.__dataclass_fields__))
    from diffedit.core import load_pipe
    from PIL import Image
    pipe, im = load_pipe(device='cpu'), Image.new('RGB', (64, 64))
    with pytest.raises(TypeError, match='Unknown knob'): edit_image(pipe, im, 'a horse', 'a zebra', radius=3)
    with pytest.raises(ValueError, match=r'r must be a number in \(0, 1\]'): edit_image(pipe, im, 'a horse', 'a zebra', r=1.5)
    with pytest.raises(ValueError, match='threshold'): edit_image(pipe, im, 'a horse', 'a zebra', DEFAULTS.replace(n=2), threshold=0)

BAD = [('r', 0), ('r', 1.01), ('n', 0), ('n', 2.5), ('n', 10**6), ('mask_encode_strength', float('nan')), ('threshold', -0.1), ('clip', 0),
       ('blur', -1), ('blur', 1e9), ('refine', 1e4), ('steps', 0), ('steps', True), ('guidance_scale', -5), ('guidance_scale', 1e6),
       ('word_weight', 0), ('word_weight', 1e30), ('guide', 'loud'), ('schedule', 3), ('decay_start', 1.), ('encode_prompt', None),
       ('encode_guidance', float('inf')), ('seed', -1), ('seed', 2**64), ('seed', 1.5), ('keep_background', 'false'), ('keep_background', 1)]

@pytest.mark.parametrize('name,value', BAD, ids=[f"{k}={v!r}" for k, v in BAD])
def test_config_refuses(name, value):
    "Each bad value is refused when the config is made, in one line that names the knob."
    with pytest.raises((ValueError, TypeError)) as e: DiffEditConfig(**{name: value})
    msg = str(e.value)
    assert msg.startswith(name) and '\n' not in msg, msg

def test_config_converts():
    import numpy as np
    c = DEFAULTS.replace(steps=20.0, r=np.float32(0.5), seed=np.int64(3), keep_background=np.bool_(False))
    assert (type(c.steps), type(c.r), type(c.seed), type(c.keep_background)) == (int, float, int, bool)
    assert DEFAULTS.replace() == DEFAULTS and DiffEditConfig() == DEFAULTS

def test_cli_agrees():
    from diffedit.cli import parser
    sub = next(a for a in parser()._actions if a.__class__.__name__ == '_SubParsersAction')
    edit = sub.choices['edit']; d = {a.dest: a.default for a in edit._actions}
    for k in ('r', 'n', 'mask_encode_strength', 'threshold', 'refine', 'word_weight', 'steps', 'guide', 'schedule', 'seed', 'keep_background'): assert d[k] == getattr(DEFAULTS, k), k
    help_ = edit.format_help()
    for k in ('r', 'n', 'mask_encode_strength', 'threshold', 'refine', 'word_weight'): assert f"(default: {getattr(DEFAULTS, k)})" in ' '.join(help_.split())
    assert d['guidance_scale'] is None and str(DEFAULTS.guidance_scale) in help_   # None: the guide's own default, 7.5 for cfg
    from diffedit.guidance import default_guidance_scale
    assert default_guidance_scale(DEFAULTS.guide) == DEFAULTS.guidance_scale

def test_app_agrees():
    "The app's controls are made from the config's fields: each control's id is its knob, its value the default."
    pytest.importorskip('gradio')
    from diffedit.app import build, APP_KNOBS
    from diffedit.core import load_pipe
    demo = build(load_pipe(device='cpu'))
    vals = {c.elem_id: c.value for c in demo.blocks.values() if getattr(c, 'elem_id', None)}
    assert set(APP_KNOBS) <= set(DiffEditConfig.__dataclass_fields__)
    for k in APP_KNOBS: assert vals[k] == getattr(DEFAULTS, k), (k, vals[k])

sys.path.insert(0, str(PKG.parent/'scripts'))
from module_graph import graph, sources, cycles   # scripts/module_graph.py, which draws the README's picture

def module_graph(): return graph(sources())

def test_no_import_circle():
    assert cycles(module_graph()) == set()

def test_layers():
    g = module_graph()
    for low in ('paper', 'config', 'guidance'): assert 'core' not in g[low], f"{low} is below the sampler but imports core"
    assert g['config'] == set() and g['paper'] == set()
    assert 'app' not in g['cli'] and 'cli' not in g['app'], "the two front ends must not import each other"
    for m, deps in g.items():
        if m not in ('cli', 'app'): assert not deps & {'cli', 'app'}, f"the library module {m} imports a front end"
    for m in ('decode', 'edit'): assert not g[m] & {'baselines', 'score', 'evaluate', 'pipeline'}, f"the {m} module holds neither baselines nor metrics"

def test_no_side_effects_at_import():
    import subprocess, sys
    code = ("import os, warnings, logging, torch, numpy, pandas, PIL.Image, fastcore.all, diffusers, transformers, accelerate; "   # their own filters first
            "from diffusers import StableDiffusionDiffEditPipeline; env = dict(os.environ); f = list(warnings.filters); "
            "import diffedit.core, diffedit.edit, diffedit.app, diffedit.cli, diffedit.evaluate, diffedit.pipeline; "
            "import transformers, diffusers; "
            "assert dict(os.environ) == env, set(os.environ) ^ set(env); assert warnings.filters == f, 'warning filters changed'; "
            "assert transformers.utils.logging.get_verbosity() == logging.WARNING; assert diffusers.utils.logging.get_verbosity() == logging.WARNING; print('clean')")
    env = {k: v for k, v in __import__('os').environ.items() if k not in ('TRANSFORMERS_VERBOSITY', 'DIFFUSERS_VERBOSITY')}
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and 'clean' in p.stdout, p.stderr[-2000:]

def test_quiet_is_scoped():
    import logging, warnings
    import diffusers, transformers
    from diffedit.core import quiet
    before = diffusers.utils.logging.get_verbosity(), transformers.utils.logging.get_verbosity(), list(warnings.filters)
    with quiet(): assert diffusers.utils.logging.get_verbosity() == logging.ERROR
    assert (diffusers.utils.logging.get_verbosity(), transformers.utils.logging.get_verbosity(), list(warnings.filters)) == before
