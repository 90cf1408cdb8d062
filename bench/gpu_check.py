"""One visit to a GPU, as one script: (a) versions, card and measured matmul rate; (c) per-call UNet latency at batch 1, 2
and 2n, eager vs CUDA graphs, NCHW vs channels-last, with and without fused QKV projections; (d) end to end, diffusers'
StableDiffusionDiffEditPipeline vs ours (default) vs ours (fast), median of 5 after a warm-up, peak memory, and the fast
edit's difference from the default one; (b) every notebook under nbdev-test on this device with the embedded model;
(x) one SDXL-size edit (1024 px), default and fast; (e) torch.compile in a subprocess with a time cap, if time is left. The JSON is written after every phase, so a timeout
loses nothing. SD-1.5-shaped components with random weights (speed does not depend on the weights), fp16, 512 px,
50 steps, r = 0.8, n = 10. `--tiny --device cpu` runs every phase at a tiny size on a CPU (the test suite does).
Usage: python bench/gpu_check.py --out results.json [--tiny] [--device cpu] [--phases acdxbe] [--budget 450]
"""
import argparse, json, os, platform, statistics, subprocess, sys, time, warnings
from pathlib import Path
import numpy as np, torch
warnings.filterwarnings('ignore')
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT/'bench')]
T0 = time.perf_counter()

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def timed(fn, dev, reps, warm=1):
    "Median seconds of `reps` calls after `warm` warm-up calls, all runs, and the peak GPU memory (GiB) of the timed calls."
    for _ in range(warm): fn()
    sync(dev)
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); sync(dev); ts.append(time.perf_counter()-t)
    return statistics.median(ts), ts, (torch.cuda.max_memory_allocated()/2**30 if dev.type == 'cuda' else None)

def save(res, out):
    res['elapsed_s'] = round(time.perf_counter()-T0, 1)
    tmp = Path(str(out)+'.tmp'); tmp.write_text(json.dumps(res, indent=1)); os.replace(tmp, out)
    print(f"[{res['elapsed_s']:.0f} s] saved {out}", flush=True)

def run_capped(cmd, timeout, **kw):
    "Run `cmd` in its own process group, killing the whole group (workers included) after `timeout` s: (output, returncode or 'timeout')."
    import signal
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True, **kw)
    try: return p.communicate(timeout=timeout)[0], p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        return p.communicate()[0], 'timeout'

def phase_a(res, dev, dtype, tiny):
    import diffusers, transformers
    res['versions'] = dict(python=platform.python_version(), torch=torch.__version__, diffusers=diffusers.__version__,
                           transformers=transformers.__version__, cuda=torch.version.cuda)
    res['device'] = torch.cuda.get_device_name() if dev.type == 'cuda' else platform.processor() or 'cpu'
    n = 1024 if tiny else 8192
    x = torch.randn(n, n, device=dev, dtype=dtype if dev.type == 'cuda' else torch.float32)
    for _ in range(3): x @ x
    sync(dev); t = time.perf_counter()
    for _ in range(10): x @ x
    sync(dev); res['matmul_tflops'] = 10*2*n**3/(time.perf_counter()-t)/1e12

def phase_c(res, pipe, dev, dtype, size, n, reps):
    "Per-call UNet latency in ms: eager vs graphs, NCHW vs channels-last, unfused vs fused QKV."
    from diffedit.fast import GraphedUNet
    h = size//8; D = pipe.unet.config.cross_attention_dim; out = {}
    def one(b, graphs, t=torch.tensor(500, device=dev)):
        x = torch.randn(b, 4, h, h, device=dev, dtype=dtype); e = torch.randn(b, 77, D, device=dev, dtype=dtype)
        call = lambda x, t, e: pipe.unet(x, t, encoder_hidden_states=e).sample
        f = GraphedUNet(call) if graphs else call
        with torch.no_grad(): return 1e3*timed(lambda: f(x, t, e), dev, reps, warm=3)[0]
    for cl in (False, True):
        pipe.unet.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        for b in (1, 2, 2*n):
            for graphs in ((False, True) if dev.type == 'cuda' else (False,)):
                k = f"b{b}_{'cl' if cl else 'nchw'}_{'graph' if graphs else 'eager'}"
                out[k] = round(one(b, graphs), 3); print(k, out[k], 'ms', flush=True)
    try:   # fused QKV projections, kept only if they pay
        pipe.fuse_qkv_projections()
        for graphs in ((False, True) if dev.type == 'cuda' else (False,)):
            k = f"b2_cl_{'graph' if graphs else 'eager'}_fused_qkv"; out[k] = round(one(2, graphs), 3); print(k, out[k], 'ms', flush=True)
        pipe.unfuse_qkv_projections()
    except Exception as e: out['fused_qkv_error'] = f"{type(e).__name__}: {e}"[:300]
    pipe.unet.to(memory_format=torch.contiguous_format)
    res['unet_ms'] = out

def phase_d(res, pipe, dev, size, steps, n, reps):
    "End to end: diffusers' pipeline, ours (default), ours (fast), in one run on one card."
    from PIL import Image
    from diffedit.edit import diffedit
    from diffedit.baselines import diffusers_diffedit_pipe, diffusers_diffedit
    from diffedit.fast import make_fast, make_slow
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    ref, q, r = "a horse on grass", "a zebra on grass", 0.8
    dpipe = diffusers_diffedit_pipe(pipe)
    e2e = dict(size=size, steps=steps, r=r, n=n, reps=reps)
    def theirs(): return diffusers_diffedit(dpipe, img, ref, q, r=r, steps=steps, output_type='pil')[0][0]
    def ours(): return diffedit(pipe, img, ref, q, r=r, n=n, steps=steps)[0]
    e2e['diffusers_s'], e2e['diffusers_runs'], e2e['diffusers_peak_gib'] = timed(theirs, dev, reps)
    slow = np.asarray(ours(), dtype=np.int16)
    e2e['ours_s'], e2e['ours_runs'], e2e['ours_peak_gib'] = timed(ours, dev, reps)
    res['e2e'] = e2e; save(res, res['_out'])
    e2e['ratio_ours_over_diffusers'] = e2e['ours_s']/e2e['diffusers_s']
    t = time.perf_counter(); make_fast(pipe); fast = np.asarray(ours(), dtype=np.int16); e2e['fast_first_call_s'] = time.perf_counter()-t   # graph capture included
    e2e['fast_s'], e2e['fast_runs'], e2e['fast_peak_gib'] = timed(ours, dev, reps)
    d = np.abs(fast - slow)
    e2e['fast_vs_default_pixels'] = dict(max=int(d.max()), mean=float(d.mean()), share_over_2=float((d > 2).mean()))
    e2e['ratio_ours_over_diffusers'] = e2e['ours_s']/e2e['diffusers_s']; e2e['ratio_fast_over_diffusers'] = e2e['fast_s']/e2e['diffusers_s']
    k = round(r*steps); e2e['unet_calls'] = dict(diffusers=2 + 2*k, ours=1 + 2*k)
    e2e['unet_sample_evals'] = dict(diffusers=4*n + 2*k + 2*k, ours=2*n + k + 2*k)
    make_slow(pipe)

def phase_x(res, dev, dtype, steps, n, reps, tiny):
    "One SDXL-size edit (random weights, 1024 px), default and fast, against the SD-1.5-size figures of phase d."
    from PIL import Image
    from diffedit.sdxl import random_sdxl_pipe, tiny_sdxl_pipe
    from diffedit.edit import diffedit
    from diffedit.fast import make_fast, make_slow
    pipe = tiny_sdxl_pipe().to(dev, dtype) if tiny else random_sdxl_pipe(dev, dtype)
    size = 64 if tiny else 1024
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8))
    def ours(): return diffedit(pipe, img, "a horse on grass", "a zebra on grass", r=0.8, n=n, steps=steps)[0]
    x = dict(size=size, steps=steps, r=0.8, n=n)
    x['ours_s'], x['ours_runs'], x['ours_peak_gib'] = timed(ours, dev, reps)
    res['sdxl'] = x; save(res, res['_out'])
    make_fast(pipe); x['fast_s'], x['fast_runs'], x['fast_peak_gib'] = timed(ours, dev, reps); make_slow(pipe)
    if 'e2e' in res: x['ratio_to_sd15_default'] = x['ours_s']/res['e2e']['ours_s']

def phase_b(res, dev, budget, tiny):
    "Every notebook under nbdev-test with the embedded model on this device (fp16 on CUDA), then the notebooks' CUDA-only cells."
    import shutil
    script = shutil.which('nbdev-test') or next((str(Path(d)/'bin/nbdev-test') for d in os.environ.get('PYTHONPATH', '').split(os.pathsep)
                                                  if d and (Path(d)/'bin/nbdev-test').exists()), 'nbdev-test')
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='2', PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    runs = [('all', ['nbs/14_fast.ipynb'] if tiny else [])] + ([('gpu_cells', ['--flags', 'gpu', 'nbs/14_fast.ipynb'])] if dev.type == 'cuda' else [])
    res['notebooks'] = {}; t0 = time.perf_counter()
    for name, args in runs:
        t = time.perf_counter(); left = budget - (t - t0)
        if left < 20: res['notebooks'][name] = dict(rc='no time left'); continue
        log, rc = run_capped([sys.executable, script, '--n-workers', '6', '--timing', *args], left, cwd=ROOT, env=env)
        failed = [l.strip() for l in log.split('nbdev Tests Failed On')[-1].splitlines()[1:] if l.startswith('\t')] if 'Failed On' in log else []
        res['notebooks'][name] = dict(rc=rc, seconds=round(time.perf_counter()-t, 1), failed=failed, log_tail=log[-8000:])
        Path(res['_out']).with_name(f'notebooks_{name}.log').write_text(log)                    # the whole log beside the JSON
        save(res, res['_out'])

def phase_e(res, dev, budget, tiny):
    "torch.compile of the UNet (default mode, fullgraph), in a subprocess capped at `budget` seconds: compile time and per-call latency."
    cmd = [sys.executable, __file__, '--compile-inner', '--device', str(dev)] + (['--tiny'] if tiny else [])
    t = time.perf_counter()
    log, rc = run_capped(cmd, budget)
    line = [l for l in log.splitlines() if l.startswith('{')]
    res['compile'] = json.loads(line[-1]) if line else dict(error=f'did not finish in {budget:.0f} s: compile stays off by default' if rc == 'timeout' else log[-2000:])
    res['compile']['wall_s'] = round(time.perf_counter()-t, 1)

def compile_inner(dev, tiny):
    from gpu_speed import sd15_pipe
    from diffedit.fast import GraphedUNet
    dtype = torch.float16 if dev.type == 'cuda' else torch.float32
    pipe = sd15_pipe(dev, dtype, tiny); size = 64 if tiny else 512; h = size//8
    x = torch.randn(2, 4, h, h, device=dev, dtype=dtype); e = torch.randn(2, 77, pipe.unet.config.cross_attention_dim, device=dev, dtype=dtype)
    t = torch.tensor(500, device=dev); out = {}
    with torch.no_grad():
        eager = pipe.unet(x, t, encoder_hidden_states=e).sample
        pipe.unet.compile(fullgraph=True)
        s = time.perf_counter(); y = pipe.unet(x, t, encoder_hidden_states=e).sample; sync(dev); out['compile_s'] = time.perf_counter()-s
        out['max_diff_vs_eager'] = (y.float()-eager.float()).abs().max().item()
        out['b2_compiled_eager_ms'] = 1e3*timed(lambda: pipe.unet(x, t, encoder_hidden_states=e).sample, dev, 20, warm=3)[0]
        if dev.type == 'cuda':
            g = GraphedUNet(lambda x, t, e: pipe.unet(x, t, encoder_hidden_states=e).sample); out['b2_compiled_graph_ms'] = 1e3*timed(lambda: g(x, t, e), dev, 20, warm=3)[0]
    print(json.dumps(out))

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', default=str(ROOT/'bench/results/gpu_check.json')); p.add_argument('--tiny', action='store_true')
    p.add_argument('--device', default=None); p.add_argument('--phases', default='acdxbe'); p.add_argument('--budget', type=float, default=450)
    p.add_argument('--reps', type=int, default=5); p.add_argument('--compile-inner', action='store_true')
    a = p.parse_args()
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if a.compile_inner: return compile_inner(dev, a.tiny)
    dtype = torch.float16 if dev.type == 'cuda' else torch.float32
    size, steps, n = (64, 10, 2) if a.tiny else (512, 50, 10)
    res = dict(script='bench/gpu_check.py', date=time.strftime('%Y-%m-%d'), tiny=a.tiny, dtype=str(dtype), _out=a.out)
    left = lambda: a.budget - (time.perf_counter()-T0)
    def phase(name, fn, *args):   # a phase that fails is recorded, and the next one still runs
        try: fn(*args)
        except Exception as e:
            import traceback; res.setdefault('errors', {})[name] = traceback.format_exc()[-3000:]; print(f'phase {name} failed: {e!r}', flush=True)
        save(res, a.out)
    if 'a' in a.phases: phase('a', phase_a, res, dev, dtype, a.tiny)
    pipe = None
    if 'c' in a.phases or 'd' in a.phases:
        from gpu_speed import sd15_pipe
        with torch.device(dev): pipe = sd15_pipe(dev, dtype, a.tiny)      # weights made on the device: seconds, not minutes
        res['unet_gflop_per_sample'] = unet_gflop(pipe, dev, dtype, size)
    if 'c' in a.phases: phase('c', phase_c, res, pipe, dev, dtype, size, n, 20 if not a.tiny else 2)
    if 'd' in a.phases: phase('d', phase_d, res, pipe, dev, size, steps, n, a.reps)
    del pipe
    if dev.type == 'cuda': torch.cuda.empty_cache()
    if 'x' in a.phases and left() > 150: phase('x', phase_x, res, dev, dtype, steps, n, 3 if not a.tiny else 1, a.tiny)
    if dev.type == 'cuda': torch.cuda.empty_cache()
    if 'b' in a.phases and left() > 60: phase('b', phase_b, res, dev, max(30, left()-90), a.tiny)
    if 'e' in a.phases and left() > 45: phase('e', phase_e, res, dev, max(30, left()-10), a.tiny)
    res.pop('_out'); save(res, a.out)
    summary = {k: res.get(k) for k in ('device', 'matmul_tflops')}
    if 'e2e' in res: summary.update({k: res['e2e'].get(k) for k in ('diffusers_s', 'ours_s', 'fast_s', 'fast_vs_default_pixels')})
    if 'sdxl' in res: summary['sdxl'] = {k: res['sdxl'].get(k) for k in ('ours_s', 'fast_s')}
    if 'errors' in res: summary['errors'] = {k: v.splitlines()[-1] for k, v in res['errors'].items()}
    if 'notebooks' in res: summary['notebooks'] = {k: (v.get('rc'), v.get('failed')) for k, v in res['notebooks'].items()}
    print(json.dumps(summary, indent=1))

def unet_gflop(pipe, dev, dtype, size):
    from torch.utils.flop_counter import FlopCounterMode
    lat = torch.randn(1, 4, size//8, size//8, device=dev, dtype=dtype); emb = torch.randn(1, 77, pipe.unet.config.cross_attention_dim, device=dev, dtype=dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as fc: pipe.unet(lat, torch.tensor(500, device=dev), emb)
    return fc.get_total_flops()/1e9

if __name__ == '__main__': main()
