"""One GPU visit, as one script, in phases that each run in their own process under a time cap and write their JSON as they end:

  a  nbdev-test of every notebook on CUDA in float16 (DIFFEDIT_DTYPE=float16, gpu cells included): one result per notebook
  b  one edit at SD-1.5 size: diffusers' StableDiffusionDiffEditPipeline against ours (default path, fast path) in the same
     process on the same components, and the fast path's edit against the default one (same edit up to float16 rounding)
  c  throughput: 8 different edits as one batch through our batched `edit_image` (lists in, a list out) against diffusers'
     pipeline given the same 8 as one batch: edits per second and peak memory for both
  d  SDXL-shaped components at 1024 px, 50 steps: our edit against diffusers' LEditsPPPipelineStableDiffusionXL at its defaults
  e  phase b's compile options, cold (empty caches) and warm (a fresh process given the cold one's compile-cache artifacts,
     torch.compiler.save/load_cache_artifacts, as a file saved beside the model would be): regional compilation
     (diffusers' compile_repeated_blocks) and max-autotune-no-cudagraphs regions inside our CUDA graphs, then the whole UNet
     compiled; run last because it is the phase most likely to run long

Random-weight components from SD-1.5's and SDXL base's configs (speed does not depend on the weights), float16, 512 px
(SDXL 1024 px), 50 steps, r = 0.8, n = 10. Every result names the card (torch.cuda.get_device_name()). Files under --out:
visit.json (every phase so far, rewritten after each) and visit_<phase>.json (each phase, rewritten as it goes, so a phase
stopped at its cap keeps what it measured). `--cpu-tiny` runs every phase at a tiny size on the CPU (a dry run of the code
paths; its figures are not GPU figures).
Usage: python bench/gpu_visit.py --out DIR [--cpu-tiny] [--phases abcde] [--budget 620]
On the device machine, through bench/gpu_visit.sh: run(command='bash bench/gpu_visit.sh', carry=['.whl'], timeout_s=680), after
`bench/gpu_visit.sh --wheels` here; 620 s of phases plus the wheels' install and the machine's start fit the 15 minutes.
"""
import argparse, json, os, platform, signal, statistics, subprocess, sys, time, warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
warnings.filterwarnings('ignore')
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT/'bench')]
T0 = time.perf_counter()
PLAN = dict(a=140, b=65, c=65, d=100, e=250)   # seconds per phase at the default budget (scaled to --budget); what a phase leaves goes to the next
PAIRS = [("a horse on grass", "a zebra on grass"), ("an apple on a table", "a pear on a table"), ("a dog on sand", "a cat on sand"),
         ("a car on a road", "a bus on a road"), ("a tree on snow", "a cactus on snow"), ("a cup on a desk", "a vase on a desk"),
         ("a bird in the sky", "a plane in the sky"), ("a boat on water", "a duck on water")]

def log(*a): print(f"[{time.perf_counter()-T0:6.1f} s]", *a, flush=True)

def write_json(path, d):
    "Write `d` to `path` through a temporary file renamed into place: a reader sees the old JSON or the new one."
    tmp = Path(str(path) + '.part'); tmp.write_text(json.dumps(d, indent=1, default=str)); os.replace(tmp, path)

def run_capped(cmd, timeout, **kw):
    "Run `cmd` in its own process group, killing the group after `timeout` s: (output, return code or 'timeout')."
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True, **kw)
    try: return p.communicate(timeout=max(1, timeout))[0], p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        return p.communicate()[0], 'timeout'

# ---------------------------------------------------------------- inside a phase's process
class Phase:
    "Settings and the result of one phase: the device, the sizes, and its JSON, saved after every measurement."
    def __init__(self, a, name, path=None):
        import torch
        self.torch, self.a, self.name, self.tiny = torch, a, name, a.cpu_tiny
        self.dev = torch.device('cpu' if a.cpu_tiny else 'cuda')
        self.dtype = torch.float32 if a.cpu_tiny else torch.float16
        self.size, self.steps, self.n, self.reps = (64, 4, 2, 1) if a.cpu_tiny else (512, 50, 10, 3)
        self.xl_size = 64 if a.cpu_tiny else 1024
        self.path = Path(path or Path(a.out)/f'visit_{name}.json'); self.work = Path(a.work)
        import diffusers, transformers
        card = torch.cuda.get_device_name() if self.dev.type == 'cuda' else f"CPU dry run ({platform.processor() or platform.machine()}), not GPU figures"
        self.res = dict(phase=name, card=card, date=time.strftime('%Y-%m-%d'), tiny=self.tiny, dtype=str(self.dtype).replace('torch.', ''),
                        versions=dict(python=platform.python_version(), torch=torch.__version__, diffusers=diffusers.__version__,
                                      transformers=transformers.__version__, cuda=torch.version.cuda))
        self.save()
    def save(self):
        self.res['elapsed_s'] = round(time.perf_counter()-T0, 1); write_json(self.path, self.res)
    def sync(self):
        if self.dev.type == 'cuda': self.torch.cuda.synchronize()
    def timed(self, fn, reps=None, warm=1):
        "Median seconds of `reps` calls after `warm` warm-ups, every run, the peak GPU memory (GiB) of the timed calls, and the last output."
        torch = self.torch
        for _ in range(warm): out = fn()
        self.sync()
        if self.dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        ts = []
        for _ in range(reps or self.reps):
            t = time.perf_counter(); out = fn(); self.sync(); ts.append(round(time.perf_counter()-t, 4))
        peak = round(torch.cuda.max_memory_allocated()/2**30, 3) if self.dev.type == 'cuda' else None
        return dict(s=statistics.median(ts), runs=ts, peak_gib=peak), out
    def image(self, i=0, size=None):
        import numpy as np
        from PIL import Image
        s = size or self.size; rng = np.random.default_rng(i)
        base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)            # a smooth random picture, different for each i
        return Image.fromarray(base).resize((s, s), Image.BICUBIC)
    def sd15(self):
        from gpu_speed import sd15_pipe
        self.torch.manual_seed(0)                                        # the same random weights in every phase's process
        with self.torch.device(self.dev): return sd15_pipe(self.dev, self.dtype, self.tiny)

def same_edit(a, b):
    "How far edit `a` is from edit `b` (EditResults): decoded latents' relative error, pixel differences, mask agreement."
    import numpy as np
    la, lb = a.latents.float().cpu(), b.latents.float().cpu()
    d = np.abs(np.asarray(a.image, dtype=np.int16) - np.asarray(b.image, dtype=np.int16))
    return dict(latents_rel=float((la-lb).norm()/lb.norm().clamp_min(1e-12)), pixels_max=int(d.max()), pixels_mean=round(float(d.mean()), 4),
                pixels_share_over_2=round(float((d > 2).mean()), 5),
                mask_agreement=round(float((np.asarray(a.mask) == np.asarray(b.mask)).mean()), 5))

def within_rounding(d, floor=None):
    "Same edit up to float16 rounding: mean pixel difference under 1 grey level (or twice the fast path's own) and masks 99% alike."
    lim = max(1.0, 2*floor['pixels_mean']) if floor else 1.0
    return bool(d['pixels_mean'] <= lim and d['mask_agreement'] >= 0.99)

def inner_a(a):
    "Every notebook under nbdev-test on this device, six at a time, each with what is left of the phase's time."
    import shutil
    P = Phase(a, 'a'); cuda = P.dev.type == 'cuda'
    nbs = [ROOT/'nbs'/n for n in (a.notebooks.split(',') if a.notebooks else [])] or sorted((ROOT/'nbs').glob('*.ipynb'))
    script = shutil.which('nbdev-test') or next((str(Path(d)/'bin/nbdev-test') for d in os.environ.get('PYTHONPATH', '').split(os.pathsep)
                                                  if d and (Path(d)/'bin/nbdev-test').exists()), None)
    cmd = [script] if script else [sys.executable, '-c', 'import sys; from nbdev.test import nbdev_test; sys.argv[0] = "nbdev-test"; nbdev_test()']
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='2' if cuda else '1',
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    if cuda: env['DIFFEDIT_DTYPE'] = 'float16'
    P.res.update(notebooks={}, command=' '.join(Path(c).name for c in cmd[:1]) + (' --flags gpu' if cuda else '') + ' nbs/NN.ipynb', workers=6 if cuda else 1)
    end = time.perf_counter() + a.cap - 5
    def one(nb):
        t = time.perf_counter(); left = end - t
        if left < 10: r = dict(ok=False, rc='no time left')
        else:
            out, rc = run_capped(cmd + (['--flags', 'gpu'] if cuda else []) + [str(nb.relative_to(ROOT))], left, cwd=ROOT, env=env)
            err = out.split('While Executing', 1)[-1] if 'While Executing' in out else out
            r = dict(ok=rc == 0, rc=rc, seconds=round(time.perf_counter()-t, 1), error=None if rc == 0 else err[-1500:])
        P.res['notebooks'][nb.name] = r; P.res['failed'] = sorted(k for k, v in P.res['notebooks'].items() if not v['ok'])
        P.save(); log('a', nb.name, 'ok' if r['ok'] else f"FAILED ({r['rc']})", r.get('seconds'))
    with ThreadPoolExecutor(P.res['workers']) as ex: list(ex.map(one, nbs))
    P.res['passed'] = sum(v['ok'] for v in P.res['notebooks'].values()); P.res['total'] = len(nbs); P.save()

def inner_b(a):
    "One edit at SD-1.5 size: diffusers' pipeline, ours by default, ours fast; the reference edit saved for phase e."
    from diffedit.edit import edit_image
    from diffedit.baselines import diffusers_diffedit_pipe, diffusers_diffedit
    from diffedit.fast import make_fast, make_slow
    P = Phase(a, 'b'); torch = P.torch
    pipe = P.sd15(); dpipe = diffusers_diffedit_pipe(pipe); img = P.image(); (ref, q), r = PAIRS[0], 0.8
    P.res['settings'] = dict(size=P.size, steps=P.steps, r=r, n=P.n, reps=P.reps, ref=ref, query=q, components='SD-1.5 configs, random weights (seed 0)')
    def theirs(): return diffusers_diffedit(dpipe, img, ref, q, r=r, steps=P.steps, output_type='pil')[0][0]
    def ours(): return edit_image(pipe, img, ref, q, r=r, n=P.n, steps=P.steps)
    P.res['diffusers'], _ = P.timed(theirs); P.save(); log('b diffusers', P.res['diffusers'])
    P.res['ours_default'], base = P.timed(ours); P.save(); log('b ours default', P.res['ours_default'])
    P.work.mkdir(parents=True, exist_ok=True)
    torch.save(dict(latents=base.latents.cpu(), image=base.image, mask=base.mask, fingerprint=fingerprint(pipe)), P.work/'ref_b.pt')
    if True:                                                           # CUDA graphs on a GPU (TorchScript graphs in a CPU dry run)
        t = time.perf_counter(); make_fast(pipe); ours(); P.sync(); first = time.perf_counter()-t   # graph capture included
        P.res['ours_fast'], fast = P.timed(ours); P.res['ours_fast']['first_call_s'] = round(first, 3)
        d = same_edit(fast, base); P.res['ours_fast']['vs_default'] = d; P.res['ours_fast']['same_edit'] = within_rounding(d)
        make_slow(pipe); log('b ours fast', P.res['ours_fast'])
    best = min((P.res[k]['s'], k) for k in ('ours_default', 'ours_fast') if k in P.res)
    P.res['summary'] = dict(diffusers_s=P.res['diffusers']['s'], ours_best_s=best[0], ours_best=best[1], ratio_ours_over_diffusers=round(best[0]/P.res['diffusers']['s'], 4),
                            target_s=0.5, at_most_target=best[0] <= 0.5)
    P.save()

def fingerprint(pipe):
    "A few sums of the weights: two processes that built the same random components agree on them."
    return [float(p.double().sum()) for p in (pipe.unet.conv_in.weight, pipe.unet.conv_out.weight, pipe.vae.decoder.conv_out.weight)]

def inner_c(a):
    "8 different edits as one batch, ours (batched `edit_image`; a loop if lists are not accepted) against diffusers' pipeline given the same 8."
    from diffedit.edit import edit_image
    from diffedit.baselines import diffusers_diffedit_pipe
    from diffedit.core import seed_generator
    from diffedit.fast import make_fast, make_slow
    P = Phase(a, 'c'); torch = P.torch; k = len(PAIRS); r = 0.8
    pipe = P.sd15(); dpipe = diffusers_diffedit_pipe(pipe)
    ims = [P.image(i) for i in range(k)]; refs, qs = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    P.res['settings'] = dict(size=P.size, steps=P.steps, r=r, n=P.n, reps=P.reps, batch=k, pairs=PAIRS)
    def ours():
        try: return edit_image(pipe, ims, refs, qs, r=r, n=P.n, steps=P.steps)
        except TypeError: P.res['ours_batched'] = False; return [edit_image(pipe, im, a_, b_, r=r, n=P.n, steps=P.steps) for im, a_, b_ in zip(ims, refs, qs)]
    def theirs(one_mask_at_a_time=False):
        g = lambda: seed_generator(0)
        if one_mask_at_a_time:   # diffusers' generate_mask puts 4n UNet inputs per image in one batch
            import numpy as np
            masks = np.concatenate([dpipe.generate_mask(image=im, source_prompt=a_, target_prompt=b_, generator=g(), num_inference_steps=P.steps)
                                    for im, a_, b_ in zip(ims, refs, qs)])
        else: masks = dpipe.generate_mask(image=ims, source_prompt=refs, target_prompt=qs, generator=g(), num_inference_steps=P.steps)
        inv = dpipe.invert(prompt=refs, image=ims, inpaint_strength=r, num_inference_steps=P.steps, generator=g()).latents
        return dpipe(prompt=qs, mask_image=masks, image_latents=inv, negative_prompt=refs, inpaint_strength=r, num_inference_steps=P.steps,
                     generator=g(), output_type='pil').images
    def measure(key, fn):
        try:
            m, out = P.timed(fn); m['edits_per_s'] = round(k/m['s'], 4); P.res[key] = m; P.save(); log('c', key, m); return out
        except torch.cuda.OutOfMemoryError as e:
            P.res[key] = dict(error=f"out of memory: {str(e)[:300]}", peak_gib=round(torch.cuda.max_memory_allocated()/2**30, 3)); P.save()
            torch.cuda.empty_cache(); log('c', key, 'out of memory')
    P.res['ours_batched'] = True
    outs = measure('ours_default', ours)
    if outs: P.res['batch_vs_single'] = same_edit(outs[0], edit_image(pipe, ims[0], refs[0], qs[0], r=r, n=P.n, steps=P.steps)); P.save()
    make_fast(pipe); measure('ours_fast', ours); make_slow(pipe)
    got = measure('diffusers', theirs)
    if got is None: measure('diffusers_masks_one_by_one', lambda: theirs(True))
    P.res['summary'] = {key: P.res[key].get('edits_per_s') for key in ('ours_default', 'ours_fast', 'diffusers', 'diffusers_masks_one_by_one') if key in P.res}
    P.save()

def inner_d(a):
    "SDXL-shaped components at 1024 px: our edit against LEditsPPPipelineStableDiffusionXL at its defaults (its own inversion and scheduler)."
    from diffusers import LEditsPPPipelineStableDiffusionXL
    from diffedit.edit import edit_image
    from diffedit.sdxl import random_sdxl_pipe, tiny_sdxl_pipe
    from diffedit.core import seed_generator
    from diffedit.fast import make_fast, make_slow
    P = Phase(a, 'd'); torch = P.torch; (ref, q), r = PAIRS[0], 0.8
    pipe = tiny_sdxl_pipe().to(P.dev, P.dtype) if P.tiny else random_sdxl_pipe(P.dev, P.dtype)
    img = P.image(size=P.xl_size)
    P.res['settings'] = dict(size=P.xl_size, steps=P.steps, r=r, n=P.n, reps=P.reps, ref=ref, query=q, components='SDXL base configs, random weights' if not P.tiny else 'tiny SDXL-shaped',
                             ledits=dict(invert='image, num_inversion_steps=steps (defaults otherwise: skip 0.15, source_prompt "")',
                                         call="editing_prompt=['horse', 'zebra'], reverse_editing_direction=[True, False] (defaults otherwise: edit_guidance_scale 5, edit_threshold 0.9)"))
    def ours(): return edit_image(pipe, img, ref, q, r=r, n=P.n, steps=P.steps)
    P.res['ours_default'], _ = P.timed(ours); P.save(); log('d ours', P.res['ours_default'])
    if True:
        make_fast(pipe); P.res['ours_fast'], _ = P.timed(ours); make_slow(pipe); P.save(); log('d ours fast', P.res['ours_fast'])
    lp = LEditsPPPipelineStableDiffusionXL(vae=pipe.vae, text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2, tokenizer=pipe.tokenizer,
                                           tokenizer_2=pipe.tokenizer_2, unet=pipe.unet, scheduler=pipe.scheduler)   # it swaps in its own DPM-Solver++ SDE
    lp.set_progress_bar_config(disable=True)
    P.res['ledits_scheduler'] = type(lp.scheduler).__name__
    def theirs():
        lp.invert(image=img, num_inversion_steps=P.steps, generator=seed_generator(0))
        return lp(editing_prompt=['horse', 'zebra'], reverse_editing_direction=[True, False], generator=seed_generator(0)).images[0]
    P.res['ledits'], _ = P.timed(theirs); P.save(); log('d ledits', P.res['ledits'])
    best = min(P.res[k]['s'] for k in ('ours_default', 'ours_fast') if k in P.res)
    P.res['summary'] = dict(ours_best_s=best, ledits_s=P.res['ledits']['s'], ratio_ours_over_ledits=round(best/P.res['ledits']['s'], 4))
    P.save()

VARIANTS = dict(   # name: (what is compiled, torch.compile keyword arguments)
    regional=('blocks', dict(fullgraph=True)),
    regional_autotune=('blocks', dict(fullgraph=True, mode='max-autotune-no-cudagraphs')),
    whole=('unet', dict(fullgraph=True)))

def inner_compile(a):
    "One compile variant in a fresh process: load the cache artifacts if given (warm), compile, time the first edit and the next ones."
    import torch
    t_start = time.perf_counter()
    if a.load_artifacts:
        t = time.perf_counter(); torch.compiler.load_cache_artifacts(Path(a.load_artifacts).read_bytes()); loaded_s = time.perf_counter()-t
    for k in ('cache_size_limit', 'recompile_limit'):   # one repeated block meets several shapes: let it compile them all
        if hasattr(torch._dynamo.config, k): setattr(torch._dynamo.config, k, 64)
    from diffedit.edit import edit_image
    from diffedit.fast import make_fast
    P = Phase(a, f'compile_{a.variant}', Path(a.work)/f'compile_{a.variant}_{"warm" if a.load_artifacts else "cold"}.json')   # not under --out: 8 files come back at most
    what, kw = VARIANTS[a.variant]
    pipe = P.sd15(); ref = torch.load(Path(a.work)/'ref_b.pt', weights_only=False)
    out = dict(variant=a.variant, compiled=what, compile_kwargs=kw, warm=bool(a.load_artifacts), weights_match=fingerprint(pipe) == ref['fingerprint'])
    if a.load_artifacts: out['load_artifacts_s'] = round(loaded_s, 3)
    if what == 'blocks': pipe.unet.compile_repeated_blocks(**kw)
    else: pipe.unet.compile(**kw)
    if P.dev.type == 'cuda': make_fast(pipe)                        # compiled regions inside our CUDA graphs
    img = P.image(); (rp, q) = PAIRS[0]
    def ours(): return edit_image(pipe, img, rp, q, r=0.8, n=P.n, steps=P.steps)
    t = time.perf_counter(); res = ours(); P.sync(); out['first_edit_s'] = round(time.perf_counter()-t, 3)   # compiling and graph capture included
    m, res = P.timed(ours, warm=0); out.update(edit_s=m['s'], runs=m['runs'], peak_gib=m['peak_gib'])
    out['compile_overhead_s'] = round(out['first_edit_s'] - out['edit_s'], 3)
    out['process_to_first_result_s'] = round(time.perf_counter() - t_start - sum(m['runs']), 3)   # imports, weights, compile, first edit
    class R: pass
    b = R(); b.latents, b.image, b.mask = ref['latents'], ref['image'], ref['mask']
    out['vs_default'] = same_edit(res, b)
    if not a.load_artifacts:
        try:
            art = torch.compiler.save_cache_artifacts()
            if art: Path(a.work, f'{a.variant}.artifacts').write_bytes(art[0]); out['artifacts_mb'] = round(len(art[0])/1e6, 2)
            else: out['artifacts_mb'] = None
        except Exception as e: out['artifacts_error'] = f"{type(e).__name__}: {e}"[:300]
    print('RESULT ' + json.dumps(out), flush=True)

def phase_e(a, cap, run_inner):
    "Each compile variant cold (empty caches) then warm (a fresh process, fresh cache folders, the cold run's artifacts loaded)."
    P = Phase(a, 'e'); end = time.perf_counter() + cap
    ref_b = json.loads((Path(a.out)/'visit_b.json').read_text()) if (Path(a.out)/'visit_b.json').exists() else {}
    floor = ref_b.get('ours_fast', {}).get('vs_default')
    P.res.update(variants={}, fast_vs_default=floor, how='cold: empty TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR; warm: a fresh process with new empty cache folders '
                 'that loads the cold run\'s torch.compiler.save_cache_artifacts() bytes first; each process builds the same random weights and makes the same edit as phase b')
    if not (Path(a.work)/'ref_b.pt').exists(): P.res['error'] = 'phase b left no reference edit'; P.save(); return
    for name in a.variants.split(','):
        v = P.res['variants'][name] = {}
        for mode in ('cold', 'warm'):
            left = end - time.perf_counter()
            if left < 40: v[mode] = dict(error='no time left'); break
            art = Path(a.work)/f'{name}.artifacts'
            if mode == 'warm' and not art.exists(): v[mode] = dict(error='the cold run saved no artifacts'); break
            cache = Path(a.work)/f'cache_{name}_{mode}'
            env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache/'inductor'), TRITON_CACHE_DIR=str(cache/'triton'))
            t = time.perf_counter()
            txt, rc = run_capped(run_inner('compile', ['--variant', name] + (['--load-artifacts', str(art)] if mode == 'warm' else [])), left, env=env)
            line = [l for l in txt.splitlines() if l.startswith('RESULT ')]
            v[mode] = json.loads(line[-1][7:]) if line else dict(error=f"stopped at its {left:.0f} s cap" if rc == 'timeout' else txt[-2000:])
            v[mode]['wall_s'] = round(time.perf_counter()-t, 1)
            d = v[mode].get('vs_default')
            if d: v[mode]['same_edit'] = within_rounding(d, floor)
            P.save(); log('e', name, mode, {k: v[mode].get(k) for k in ('first_edit_s', 'edit_s', 'compile_overhead_s', 'process_to_first_result_s', 'error')})
            if rc == 'timeout': break
        if v.get('warm', {}).get('edit_s') is not None:
            v['warm_start_cost_s'] = v['warm']['compile_overhead_s']; v['on_by_default_rule'] = 'warm start under 10 s'
            v['warm_start_under_10_s'] = v['warm']['compile_overhead_s'] < 10
    P.save()

# ---------------------------------------------------------------- the orchestrator
def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True); p.add_argument('--work', default='/tmp/gpu_visit'); p.add_argument('--cpu-tiny', action='store_true')
    p.add_argument('--phases', default='abcde'); p.add_argument('--budget', type=float, default=None, help="seconds for all phases (default 620; 420 with --cpu-tiny)")
    p.add_argument('--notebooks', default='', help="comma-separated notebook names for phase a (default: all; 16_config.ipynb with --cpu-tiny)")
    p.add_argument('--variants', default=None, help="phase e's compile variants, in order (default regional,regional_autotune,whole; regional with --cpu-tiny)")
    p.add_argument('--inner', default=None); p.add_argument('--cap', type=float, default=60)
    p.add_argument('--variant', default=None); p.add_argument('--load-artifacts', default=None)
    a = p.parse_args()
    if a.inner:
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        return dict(a=inner_a, b=inner_b, c=inner_c, d=inner_d, compile=inner_compile)[a.inner](a)
    budget = a.budget or (420 if a.cpu_tiny else 620)
    if a.cpu_tiny and not a.notebooks: a.notebooks = '16_config.ipynb'
    a.variants = a.variants or ('regional' if a.cpu_tiny else 'regional,regional_autotune,whole')   # inductor's C++ builds take minutes on a CPU
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True); Path(a.work).mkdir(parents=True, exist_ok=True)
    def run_inner(name, extra=(), cap=60):
        return [sys.executable, __file__, '--inner', name, '--out', str(out), '--work', a.work, '--cap', str(cap), '--notebooks', a.notebooks,
                '--variants', a.variants] + (['--cpu-tiny'] if a.cpu_tiny else []) + list(extra)
    plan = {k: v*budget/sum(PLAN.values()) for k, v in PLAN.items() if k in a.phases}
    visit = dict(script='bench/gpu_visit.py', command=' '.join(sys.argv), date=time.strftime('%Y-%m-%d'), budget_s=budget, plan_s={k: round(v) for k, v in plan.items()},
                 cpu_dry_run=a.cpu_tiny, phases={})
    for name in plan:
        later = sum(v for k, v in plan.items() if k > name)
        cap = budget - (time.perf_counter()-T0) - later                  # its own share plus what earlier phases left
        if cap < 30: visit['phases'][name] = dict(status='skipped: no time left'); continue
        log(f'phase {name}: up to {cap:.0f} s')
        t = time.perf_counter()
        if name == 'e':
            try: phase_e(a, cap, lambda n, extra: run_inner(n, extra)); rc = 0
            except Exception as e: rc = f"{type(e).__name__}: {e}"
        else:
            txt, rc = run_capped(run_inner(name, cap=cap), cap + 15)
            if rc != 0: log(f'phase {name} ended with {rc}:\n' + txt[-3000:])
            else: log(f'phase {name} output tail:\n' + txt[-600:])
        f = out/f'visit_{name}.json'
        visit['phases'][name] = dict(status='done' if rc == 0 else f'stopped ({rc})', seconds=round(time.perf_counter()-t, 1),
                                     result=json.loads(f.read_text()) if f.exists() else None)
        write_json(out/'visit.json', visit | dict(elapsed_s=round(time.perf_counter()-T0, 1)))
    short = {}
    for k, v in visit['phases'].items():
        r = (v.get('result') or {})
        short[k] = dict(status=v['status'], seconds=v.get('seconds'), card=r.get('card'),
                        **({'passed': r.get('passed'), 'total': r.get('total'), 'failed': r.get('failed')} if k == 'a' else {}),
                        **({'summary': r.get('summary')} if 'summary' in r else {}),
                        **({'variants': {n: {m: (x.get('first_edit_s'), x.get('edit_s'), x.get('error')) for m, x in vv.items() if isinstance(x, dict)}
                                         for n, vv in r.get('variants', {}).items()}} if k == 'e' else {}))
    visit['short'] = short; write_json(out/'visit.json', visit | dict(elapsed_s=round(time.perf_counter()-T0, 1)))
    print(json.dumps(short, indent=1, default=str))

if __name__ == '__main__': main()
