"""One GPU visit that trains the embedded model further and measures it against the shipped one.

Phases, the JSON (`continue.json`) rewritten after each, so a run stopped at its time limit keeps what it finished:
  setup   versions, device, the plan;
  probe   the UNet's training speed from today's weights (two short runs, the difference of their times), and the number
          of steps that fits the budget, so the learning rate's cosine reaches zero inside it;
  train   `diffedit.train.train_model(init_from=today's model)`: same scenes, VAE, tokenizer and classifier kept, the UNet and
          text encoder trained further through accelerate's `fit` (bf16 on CUDA; checkpoints in --work, resumable); the new
          UNet and text encoder are then packed into `new-model.tar.part_*` (15 MB parts) in --out;
  quality generation accuracy (guidance 3, 5, 7.5; same prompts and seeds), VAE PSNR on held-out scenes and whether the VAE
          file is unchanged, model sizes: both models;
  edits   our DiffEdit (`run_ours`, default settings) on the first --edits edits of `edit_set`, both models on the same
          batch of edits in turn, scored with `diffedit.score.score`; IoU, background PSNR and success, overall, by number of
          objects, and paired (edits only one model gets right), until the edits or the budget run out.
`--tiny --device cpu` runs every phase at a tiny size on a CPU in seconds (the test suite does).
Usage: python bench/gpu_continue.py --out DIR [--work DIR] [--budget 500] [--edits 200] [--tiny] [--device cpu]
"""
import argparse, copy, json, os, platform, shutil, subprocess, sys, tarfile, time, traceback, warnings
from pathlib import Path
import numpy as np, torch
warnings.filterwarnings('ignore')
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
T0 = time.perf_counter()
def elapsed(): return time.perf_counter() - T0

def save(res, out):
    res['elapsed_s'] = round(elapsed(), 1)
    f = Path(out)/'continue.json'; tmp = f.with_suffix('.tmp')
    tmp.write_text(json.dumps(res, indent=1)); os.replace(tmp, f)
    print(f"[{res['elapsed_s']:.0f} s] saved {f}", flush=True)

def folder_mb(p): return round(sum(f.stat().st_size for f in Path(p).rglob('*') if f.is_file())/1e6, 2)

def pack(model_dir, out, part_mb=15):
    "The new UNet and text encoder (with metrics and log) as `new-model.tar`, split in `part_mb` MB parts (a file that comes back is at most 16 MiB)."
    for f in Path(out).glob('new-model.tar.part_*'): f.unlink()
    tar = Path(out)/'new-model.tar'
    with tarfile.open(tar, 'w') as t:
        for k in ('unet', 'text_encoder'): t.add(Path(model_dir)/'tiny-sd'/k, arcname=f"tiny-sd/{k}")
        for k in ('metrics.json', 'train_log.txt'):
            if (Path(model_dir)/k).exists(): t.add(Path(model_dir)/k, arcname=k)
    data, n, parts = tar.read_bytes(), part_mb*10**6, []
    for i in range(0, len(data), n):
        p = Path(out)/f"new-model.tar.part_{chr(97+i//n//26)}{chr(97+i//n%26)}"; p.write_bytes(data[i:i+n]); parts.append(p.name)
    tar.unlink()
    return parts

def probe(init, dev, bs, steps):
    "Seconds per UNet training step from `init`'s weights: two runs of `steps` (a, b) steps, the difference of their times over b - a."
    from diffedit.train import load_parts, train_unet
    parts = load_parts(init); cfgs = parts['cfgs']; h = cfgs['unet']['sample_size']
    g = torch.Generator().manual_seed(0); n = 1024
    mean, std = torch.randn(n, 4, h, h, generator=g), torch.rand(n, 4, h, h, generator=g)*0.1
    ids = torch.randint(2, len(parts['tok']), (n, parts['tok'].model_max_length), generator=g); ids[:, 0] = 0
    ts = []
    for k in steps:
        t = time.perf_counter()
        train_unet(mean, std, ids, steps=k, bs=bs, cfgs=cfgs, scaling=parts['scaling'], init=copy.deepcopy(parts['denoiser']), device=dev.type)
        if dev.type == 'cuda': torch.cuda.synchronize()
        ts.append(time.perf_counter()-t)
    return (ts[1]-ts[0])/(steps[1]-steps[0]), ts

def quality(pipe, clf, held, eval_n, eval_steps, dev):
    from diffedit.train import generation_accuracy, psnr
    gen = {}
    for gs in (3., 5., 7.5):
        per, mean = generation_accuracy(pipe, clf, n_per=eval_n, guidance_scale=gs, steps=eval_steps)
        gen[str(gs)] = dict(mean=mean, per_object=per)
    return dict(generation_accuracy=gen, vae_psnr_db=psnr(pipe.vae, held, dev))

def edit_summary(rows):
    import pandas as pd
    from diffedit.evaluate import sign_p
    df = pd.DataFrame(rows)
    agg = dict(iou=('iou', 'mean'), psnr=('psnr', 'mean'), success=('success', 'mean'), success_mask=('success_mask', 'mean'), edits=('i', 'count'))
    out = dict(by_model=df.groupby('model').agg(**agg).round(4).to_dict('index'),
               by_objects={f"{m} {k} objects": v for (m, k), v in df.groupby(['model', 'objects']).agg(**agg).round(4).to_dict('index').items()})
    w = df.pivot_table(index='i', columns='model', values=['success', 'iou'])
    if ('success', 'new') in w and ('success', 'today') in w:
        won = int(((w['success']['new'] == 1) & (w['success']['today'] == 0)).sum()); lost = int(((w['success']['new'] == 0) & (w['success']['today'] == 1)).sum())
        out['paired'] = dict(edits=len(w), new_only=won, today_only=lost, sign_p=sign_p(lost, won),
                             iou_new_higher=int((w['iou']['new'] > w['iou']['today']).sum()), iou_new_lower=int((w['iou']['new'] < w['iou']['today']).sum()))
    return out

def run_edits(res, out, pipes, clf, edits, bs, steps, end, dev):
    "Both models on each batch of edits in turn; rows and summary saved after every batch; stops before a batch that would not end by `end`."
    from fastcore.basics import chunked
    from diffedit.evaluate import run_ours, score_all
    rows, last = res['edits'].setdefault('rows', []), 0.
    for k, ch in enumerate(chunked(edits, bs)):
        if elapsed() + 1.2*last > end: res['edits']['stopped'] = f"time budget: {k*bs} of {len(edits)} edits done"; break
        t = time.perf_counter()
        for name, pipe in pipes.items():
            ims, ms, secs = run_ours(pipe, ch, bs=bs, steps=steps)
            rows += score_all(clf, ch, (ims, [m.detach().cpu() for m in ms], secs), model=name, device=dev.type)
        last = time.perf_counter()-t
        res['edits']['summary'] = edit_summary(rows); save(res, out)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=str(ROOT/'bench'/'results'/'continue'), help="folder for continue.json and the new weights' tar parts")
    p.add_argument('--work', default=None, help="folder for the training's checkpoints and the new model (default: OUT/work)")
    p.add_argument('--init', default=None, help="the pipeline folder to continue (default: the embedded model)")
    p.add_argument('--budget', type=float, default=500, help="seconds from the start for everything; training gets what the measuring leaves")
    p.add_argument('--reserve', type=float, default=None, help="seconds kept for saving and measuring after training (default 170; 0 with --tiny)")
    p.add_argument('--edits', type=int, default=200, help="edits of the evaluation set to run with both models")
    p.add_argument('--max_steps', type=int, default=20000, help="at most this many training steps, whatever fits")
    p.add_argument('--lr', type=float, default=5e-4); p.add_argument('--bs', type=int, default=256)
    p.add_argument('--n_scenes', type=int, default=40000); p.add_argument('--eval_n', type=int, default=16); p.add_argument('--eval_steps', type=int, default=50)
    p.add_argument('--held_n', type=int, default=512); p.add_argument('--edit_bs', type=int, default=16); p.add_argument('--edit_steps', type=int, default=50)
    p.add_argument('--tiny', action='store_true', help="every phase at a tiny size (for a CPU check)")
    p.add_argument('--device', default=None, choices=['cpu', 'cuda'])
    a = p.parse_args(argv)
    for k in ('budget', 'edits', 'max_steps', 'lr', 'bs', 'n_scenes', 'held_n', 'edit_bs', 'edit_steps', 'eval_steps'):
        if not getattr(a, k) > 0: p.error(f"--{k} must be positive, not {getattr(a, k)}")
    if a.device == 'cuda' and not torch.cuda.is_available(): p.error("--device cuda asked for, but CUDA is not available")
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    from diffedit.core import embedded_model, load_pipe, quiet
    init = Path(a.init or embedded_model())
    if not (init/'model_index.json').is_file(): p.error(f"--init {str(init)!r} is not a saved pipeline folder (it has no model_index.json)")
    if a.tiny: a.n_scenes, a.eval_n, a.eval_steps, a.held_n, a.bs, a.edit_steps, a.edit_bs, a.max_steps = 16, 1, 2, 8, 4, 4, 2, min(a.max_steps, 3); a.edits = min(a.edits, 2)
    reserve = a.reserve if a.reserve is not None else (0. if a.tiny else 170.)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True); work = Path(a.work) if a.work else out/'work'
    if dev.type == 'cpu': torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', os.cpu_count())))
    import diffusers, transformers, accelerate
    res = dict(script='bench/gpu_continue.py', date=time.strftime('%Y-%m-%d %H:%M'), tiny=a.tiny, args=vars(a), init=str(init),
               versions=dict(python=platform.python_version(), torch=torch.__version__, diffusers=diffusers.__version__, transformers=transformers.__version__, accelerate=accelerate.__version__),
               device=torch.cuda.get_device_name() if dev.type == 'cuda' else (platform.processor() or 'cpu'), errors={}, edits={})
    save(res, out)
    # probe: steps that fit
    try:
        k = (1, 3) if a.tiny else (10, 60)
        sec, ts = probe(init, dev, a.bs, k)
        train_s = a.budget - reserve - elapsed() - (0 if a.tiny else 25)   # 25 s: drawing the scenes, encoding them, saving
        steps = int(max(1, min(a.max_steps, 0.95*train_s/max(sec, 1e-3))))
        res['probe'] = dict(seconds_per_step=round(sec, 4), runs_s=[round(t, 2) for t in ts], run_steps=k, train_seconds_planned=round(train_s, 1), steps=steps)
    except Exception as e:
        res['errors']['probe'] = traceback.format_exc()[-3000:]; steps = 1 if a.tiny else 2000
        res['probe'] = dict(steps=steps, fallback=True)
    print(f"training {steps} steps", flush=True); save(res, out)
    # train
    from diffedit.train import train_model
    minutes = max(0.05, (a.budget - reserve - elapsed())/60)
    with quiet():
        m = train_model(work/'model', init_from=init, n_scenes=a.n_scenes, unet_steps=steps, unet_bs=a.bs, unet_lr=a.lr, device=dev.type,
                        minutes=minutes, eval_n=0, held_n=a.held_n, clf_scenes=20 if a.tiny else 20000, workers=1 if a.tiny else None)
    res['train'] = {k: m[k] for k in ('device', 'mixed_precision', 'n_scenes', 'unet_steps', 'unet_steps_done', 'unet_bs', 'unet_lr', 'unet_seconds', 'total_seconds', 'scaling_factor')}
    res['train']['log'] = (work/'model'/'train_log.txt').read_text().splitlines()[-40:]
    new = work/'model'/'tiny-sd'
    res['weights'] = dict(parts=pack(work/'model', out), unpack="cat new-model.tar.part_* > new-model.tar && tar xf new-model.tar  # tiny-sd/unet, tiny-sd/text_encoder, metrics.json, train_log.txt")
    save(res, out)
    # quality, both models
    try:
        from diffedit.score import load_classifier
        from diffedit.train import make_dataset
        clf_path = init.parent/'classifier'/'model.safetensors'
        clf = load_classifier(clf_path if clf_path.exists() else None, device=dev)
        size = json.loads((init/'vae'/'config.json').read_text())['sample_size']
        held, _, _ = make_dataset(a.held_n, size, seed=10_000_000, workers=1 if a.tiny else None)   # the held-out scenes the training run scored
        if dev.type == 'cuda': torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False   # measure in plain fp32
        with quiet(): pipes = dict(today=load_pipe(init, device=dev, dtype=torch.float32), new=load_pipe(new, device=dev, dtype=torch.float32))
        res['quality'] = {}
        for name, pipe in pipes.items():
            res['quality'][name] = quality(pipe, clf, held, a.eval_n, a.eval_steps, dev); save(res, out)
        vae_file = 'vae/diffusion_pytorch_model.safetensors'
        models_mb = folder_mb(init.parent) - folder_mb(init) + folder_mb(new) if (init.parent/'classifier').exists() else None
        res['size'] = dict(today_mb=folder_mb(init), new_mb=folder_mb(new), models_folder_if_adopted_mb=models_mb, limit_mb=40,
                           vae_unchanged=(init/vae_file).read_bytes() == (new/vae_file).read_bytes(),
                           tokenizer_unchanged=all((init/'tokenizer'/f).read_bytes() == (new/'tokenizer'/f).read_bytes() for f in ('vocab.json', 'merges.txt')))
        q = res['quality']
        res['quality']['new_at_least_today'] = dict(
            generation_accuracy={g: q['new']['generation_accuracy'][g]['mean'] >= q['today']['generation_accuracy'][g]['mean'] for g in q['today']['generation_accuracy']},
            vae_psnr=q['new']['vae_psnr_db'] >= q['today']['vae_psnr_db'] - 1e-6, size=(models_mb or res['size']['new_mb']) < 40)
        mf = work/'model'/'metrics.json'; mj = json.loads(mf.read_text())   # the new model's metrics.json, complete as the shipped one's
        mj.update(generation_accuracy={g: dict(per_object=v['per_object'], mean=v['mean']) for g, v in q['new']['generation_accuracy'].items()},
                  generation_accuracy_today=q['today']['generation_accuracy'], eval_n=a.eval_n, eval_steps=a.eval_steps)
        mf.write_text(json.dumps(mj, indent=1)); pack(work/'model', out)
    except Exception:
        res['errors']['quality'] = traceback.format_exc()[-3000:]; pipes = None
    save(res, out)
    # edits, both models, same edits
    if pipes:
        from diffedit.evaluate import edit_set
        edits = edit_set(a.edits); res['edits'].update(n_asked=a.edits, bs=a.edit_bs, steps=a.edit_steps, device=dev.type)
        try: run_edits(res, out, pipes, clf, edits, a.edit_bs, a.edit_steps, a.budget - 5, dev)
        except Exception:
            res['errors']['edits'] = traceback.format_exc()[-3000:]
            if dev.type == 'cuda':   # the same edits on the CPU, with what time is left
                res['edits'].update(rows=[], device='cpu'); torch.set_num_threads(os.cpu_count())
                try: run_edits(res, out, {k: v.to('cpu') for k, v in pipes.items()}, clf.to('cpu'), edits, a.edit_bs, a.edit_steps, a.budget - 5, torch.device('cpu'))
                except Exception: res['errors']['edits_cpu'] = traceback.format_exc()[-3000:]
        res['edits']['done'] = len(res['edits'].get('rows', []))//2
    res['finished'] = True; save(res, out)
    print(json.dumps({k: res.get(k) for k in ('probe', 'size', 'errors')}, indent=1))
    print(json.dumps(res['edits'].get('summary'), indent=1))

if __name__ == '__main__': main()
