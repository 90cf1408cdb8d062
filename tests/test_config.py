"""One source of truth: every default of a DiffEdit knob, in the functions' signatures, the pipeline's, the command line's options and the
app's controls, is the value in `diffedit.config.DEFAULTS`; and the package's modules import each other bottom-up, without a circle."""
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
    from diffedit import mask, encode, edit, core, evaluate, app, interpolate
    from diffedit.baselines import diffusers_diffedit
    return [mask.noise_diff, mask.mask_map, mask.get_mask, mask.soft_map, mask.binarize, mask.mask_timestep, encode.ddim_encode, encode.reconstruct,
            edit.masked_decode, edit.edit_image, edit.diffedit, edit.pixel_mask, core.sample, core.denoise, core.ddim_denoise, core.img2img,
            core.ddim_steps, evaluate.run_ours, app.run_edit, interpolate.interpolate_frames]

@pytest.mark.parametrize('fn', _functions(), ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_signatures_agree(fn):
    encoding = fn.__name__ in ('ddim_encode', 'reconstruct')                # the encoding's own prompt and guidance
    knobs = _knobs_in(fn, dict(prompt='encode_prompt', guidance_scale='encode_guidance') if encoding else None)
    assert knobs, f"{fn.__name__} has no knob among its parameters"
    for k, v in knobs.items(): assert v == getattr(DEFAULTS, k), f"{fn.__name__}({k}={v!r}) but DEFAULTS.{k} = {getattr(DEFAULTS, k)!r}"

def test_edit_image_has_every_knob():
    from diffedit.edit import edit_image, diffedit
    assert set(DiffEditConfig.__dataclass_fields__) <= set(_defaults(edit_image))
    assert set(DiffEditConfig.__dataclass_fields__) <= set(inspect.signature(diffedit).parameters)   # fastcore's delegates shows them

def test_pipeline_agrees():
    from diffedit.pipeline import DiffEditPipeline
    names = dict(inpaint_strength='r', num_maps_per_mask='n', mask_threshold='threshold', num_inference_steps='steps')
    knobs = _knobs_in(DiffEditPipeline.__call__, names)
    assert set(knobs) == {'r', 'n', 'mask_encode_strength', 'threshold', 'steps', 'guidance_scale', 'keep_background', 'refine', 'word_weight'}
    for k, v in knobs.items(): assert v == getattr(DEFAULTS, k), k
    for p, k in names.items():   # the diffusers names the config records are the pipeline's own parameters
        assert DEFAULTS.__dataclass_fields__[k].metadata['diffusers'] in (p, None), (p, k)

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
    pytest.importorskip('gradio')
    from diffedit.app import build
    from diffedit.core import load_pipe
    demo = build(load_pipe(device='cpu'))
    vals = {c.elem_id: c.value for c in demo.blocks.values() if getattr(c, 'elem_id', None)}
    for el, k in dict(r='r', n='n', threshold='threshold', g='guidance_scale', steps='steps', seed='seed', keep='keep_background', guide='guide', schedule='schedule',
                     refine='refine', word_weight='word_weight').items():
        assert vals[el] == getattr(DEFAULTS, k), (el, vals[el])

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
    assert not g['edit'] & {'baselines', 'score', 'evaluate'}, "the decode module holds neither baselines nor metrics"

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
