"""Our DiffEdit on the CPU, default and fast path (and the fast path with tuned convolutions), against diffusers' StableDiffusionDiffEditPipeline on the same embedded model.

One process, one thread, taking turns on each edit after a warm-up, so that whatever else the machine runs falls on all
three alike; the turn order rotates from edit to edit. Writes seconds per edit, each edit's ratio to diffusers' time on
that edit, and how far the fast edit is from the default one (max pixel difference, mask equality).

    python bench/cpu_speed.py                       # 50 steps, r = 0.8, n = 10, 8 timed edits -> bench/results/cpu_speed.json
    python bench/cpu_speed.py --r 0.7 --out bench/results/cpu_speed_r07.json
    python bench/cpu_speed.py --calls               # one UNet call per lever, batch 1 / 2 / 2n -> bench/results/cpu_speed_calls.json
    python bench/cpu_speed.py --profile             # where one edit's time goes (cProfile), default and fast path
"""
import argparse, cProfile, io, json, os, platform, pstats, subprocess, sys, time, warnings
from pathlib import Path
import numpy as np, torch

from diffedit.core import load_pipe, eager_unet, text_embeddings
from diffedit.edit import diffedit
from diffedit.baselines import diffusers_diffedit_pipe
from diffedit.evaluate import edit_set, run_diffusers
from diffedit.fast import FrozenUNet, make_fast, _seconds

ROOT = Path(__file__).resolve().parents[1]

def machine(threads):
    "What the numbers were measured on: CPU, threads, load, versions, commit."
    try: commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError: commit = None
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.processor()) if Path('/proc/cpuinfo').exists() else platform.processor()
    return dict(cpu=cpu, cores=os.cpu_count(), threads=threads, torch=torch.__version__, commit=commit)

def counter(pipe):
    "UNet calls and samples, counted by a forward hook on `pipe.unet` (eager) or around its fast path (frozen graphs)."
    from diffedit.core import fast_path, set_fast_path
    n = dict(calls=0, samples=0)
    def count(b): n['calls'] += 1; n['samples'] += b
    if (f := fast_path(pipe)) is not None:
        def counted(x, t, emb): count(len(x)); return f(x, t, emb)
        set_fast_path(pipe, counted)
        return n, lambda: set_fast_path(pipe, f)
    h = pipe.unet.register_forward_pre_hook(lambda m, a, kw: count(len(a[0]) if a else len(kw['sample'])), with_kwargs=True)
    return n, h.remove

def race(k=8, r=0.8, steps=50, n=10, threads=1, log=print):
    "Seconds per edit of ours (default), ours (fast) and diffusers, taking turns on `k` edits after one warm-up edit each."
    torch.set_num_threads(threads)
    pipe = load_pipe(); dpipe = diffusers_diffedit_pipe(pipe)            # diffusers runs on the default pipeline's own modules
    fpipe = make_fast(load_pipe())                                       # the fast path on its own copy of the model
    ours = lambda p: (lambda e: diffedit(p, e.scene.image, e.ref, e.query, r=r, steps=steps, n=n))
    tpipe = make_fast(load_pipe(), tune_convs=True)                     # and with the convolutions tuned (not the same bits)
    fns = {'ours': ours(pipe), 'ours fast': ours(fpipe), 'ours fast, tuned convs': ours(tpipe),
           'diffusers': lambda e: run_diffusers(dpipe, [e], r=r, n=n, steps=steps, bs=1)}
    es = edit_set(k+1)
    warm = {}
    for m, f in fns.items(): t0 = time.perf_counter(); f(es[0]); warm[m] = time.perf_counter() - t0   # the fast path traces here
    count = {}
    for m, p in (('ours', pipe), ('ours fast', fpipe), ('ours fast, tuned convs', tpipe), ('diffusers', pipe)):   # UNet calls and samples of one edit
        c, undo = counter(p); fns[m](es[0]); undo(); count[m] = c
    t = {m: [] for m in fns}; cpu = {m: [] for m in fns}; diffs, same = [], []
    load0 = os.getloadavg()
    for i, e in enumerate(es[1:]):
        order = list(fns)[i % len(fns):] + list(fns)[:i % len(fns)]      # rotate who goes first
        out = {}
        for m in order:
            c0, t0 = time.process_time(), time.perf_counter(); out[m] = fns[m](e)
            t[m].append(time.perf_counter() - t0); cpu[m].append(time.process_time() - c0)   # CPU time: what preemption by other work does not add
        (a, am) = out['ours'][:2]
        d = {m: int(np.abs(np.asarray(a, dtype=int) - np.asarray(out[m][0], dtype=int)).max()) for m in ('ours fast', 'ours fast, tuned convs')}
        diffs.append(d); same.append({m: bool((np.asarray(am) == np.asarray(out[m][1])).all()) for m in d})
        if log: log(f"edit {i+1}/{k} ({e.old}->{e.new}): " + ', '.join(f"{m} {t[m][-1]:.2f} s" for m in fns) + f"; vs default: max diff {d}, same mask {same[-1]}")
    load1 = os.getloadavg()
    T, P = {m: np.array(v) for m, v in t.items()}, {m: np.array(v) for m, v in cpu.items()}
    methods = {m: dict(sec_per_edit=float(np.median(v)), ratio_to_diffusers=float(np.median(v/T['diffusers'])),
                       ratio_min=float((v/T['diffusers']).min()), ratio_max=float((v/T['diffusers']).max()),
                       cpu_sec_per_edit=float(np.median(P[m])), cpu_ratio_to_diffusers=float(np.median(P[m]/P['diffusers'])),
                       unet_calls=count[m]['calls'], unet_samples=count[m]['samples'], first_edit_sec=warm[m],
                       seconds=[round(x, 4) for x in v], cpu_seconds=[round(x, 4) for x in P[m]])
               for m, v in T.items()}
    return dict(what="wall-clock seconds per edit (median) and the median of each edit's ratio to diffusers' time on the same edit; cpu_*: the same in process CPU time",
                settings=dict(steps=steps, r=r, n=n, guidance_scale=7.5, model='embedded tiny-sd (64 px)'),
                edits=k, methods=methods, fast_vs_default_max_pixel_diff=max(d['ours fast'] for d in diffs),
                fast_vs_default_same_mask=all(s['ours fast'] for s in same),
                tuned_vs_default_max_pixel_diff=max(d['ours fast, tuned convs'] for d in diffs), tuned_vs_default_same_mask=all(s['ours fast, tuned convs'] for s in same),
                load_avg=dict(start=[round(x, 2) for x in load0], end=[round(x, 2) for x in load1]), machine=machine(threads))

def calls(rounds=9, threads=1, log=print):
    "Milliseconds per UNet call for each lever added in turn, at the batches an edit uses: 1 (encode), 2 (decode), 20 (mask, n = 10)."
    torch.set_num_threads(threads)
    pipe, cl = load_pipe(), load_pipe(); cl.unet.to(memory_format=torch.channels_last)
    clx = lambda f: (lambda x, t, e: f(x.contiguous(memory_format=torch.channels_last), t, e))
    variants = {'eager': lambda x, t, e: eager_unet(pipe, x, t, e),
                'eager, channels-last': clx(lambda x, t, e: eager_unet(cl, x, t, e)),
                'frozen': FrozenUNet(pipe, cache_kv=False, tune_convs=False),
                'frozen, channels-last': clx(FrozenUNet(cl, cache_kv=False, tune_convs=False)),
                'frozen, text k/v once (fast path)': FrozenUNet(pipe),
                'frozen, text k/v once, tuned convs': FrozenUNet(pipe, tune_convs=True)}
    u, c = text_embeddings(pipe, ""), text_embeddings(pipe, "a zebra and a tree on grass")
    t, res = torch.tensor(400), {}
    with torch.no_grad():
        for b, emb in ((1, u), (2, torch.cat([u, c])), (20, torch.cat([u, c]*10))):
            x = torch.randn(b, 4, 16, 16); ref = eager_unet(pipe, x, t, emb)
            first, ms = {}, {m: [] for m in variants}
            for m, f in variants.items():
                t0 = time.perf_counter(); y = f(x, t, emb); first[m] = time.perf_counter() - t0
                first[m] = dict(first_call_sec=round(first[m], 3), max_abs_diff=float((y - ref).abs().max()))
            reps = 10 if b < 20 else 2
            for _ in range(rounds):                                      # taking turns, as in the race
                for m, f in variants.items(): ms[m].append(_seconds(lambda: f(x, t, emb), reps)*1000)   # the best of `reps` calls
            res[f'batch {b}'] = {m: dict(ms_per_call=round(float(np.median(v)), 2), ratio_to_eager=round(float(np.median(np.array(v)/np.array(ms['eager']))), 3),
                                         best_ms=round(float(min(v)), 2), **first[m])
                                 for m, v in ms.items()}
            if log: log(f"batch {b}: " + '; '.join(f"{m} {d['ms_per_call']} ms" for m, d in res[f'batch {b}'].items()))
    return dict(what='milliseconds per UNet call: in each of the rounds (taking turns) the best of several calls; the median over rounds, its ratio to eager in the same round, and the best of all',
                text_tokens=u.shape[1],
                batches=res, load_avg=[round(x, 2) for x in os.getloadavg()], machine=machine(threads))

def profile(r=0.8, steps=50, n=10, threads=1, top=12):
    "Where one edit's time goes: cProfile's top functions by own time, default path then fast path."
    torch.set_num_threads(threads)
    e = edit_set(2)[1]
    for name, p in (('default', load_pipe()), ('fast', make_fast(load_pipe()))):
        diffedit(p, e.scene.image, e.ref, e.query, r=r, steps=steps, n=n)   # warm-up (the fast path traces here)
        pr = cProfile.Profile(); pr.enable(); diffedit(p, e.scene.image, e.ref, e.query, r=r, steps=steps, n=n); pr.disable()
        s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats('tottime').print_stats(top); print(f'--- {name} path ---\n' + s.getvalue())

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--k', type=int, default=8, help='timed edits (after one warm-up edit)')
    ap.add_argument('--r', type=float, default=0.8); ap.add_argument('--steps', type=int, default=50); ap.add_argument('--n', type=int, default=10)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--calls', action='store_true', help='time one UNet call per lever instead of whole edits')
    ap.add_argument('--profile', action='store_true', help='print where one edit spends its time')
    ap.add_argument('--out', help='JSON to write (default: bench/results/cpu_speed.json, or cpu_speed_calls.json with --calls)')
    a = ap.parse_args()
    warnings.simplefilter('ignore')
    if a.profile: profile(a.r, a.steps, a.n, a.threads); sys.exit()
    res = calls(threads=a.threads) if a.calls else race(a.k, a.r, a.steps, a.n, a.threads)
    out = Path(a.out or ROOT/'bench'/'results'/('cpu_speed_calls.json' if a.calls else 'cpu_speed.json'))
    out.write_text(json.dumps(res, indent=1) + '\n')
    print(json.dumps(res if a.calls else {m: {k: v for k, v in d.items() if k != 'seconds'} for m, d in res['methods'].items()}, indent=1))
    print(f'written to {out}')
