"""Pixel-resolution masks and a pixel-exact background, measured on the evaluation's 200 edits.

`python bench/pixel_mask_background.py run` runs our DiffEdit once (the evaluation's defaults) and caches the
decoded images with their binary and soft masks; `... score` scores both mask resolutions and the edit with and without
`keep_background` from that one run, and writes bench/results/pixel_mask_background.json."""
import sys, time, json, os
from pathlib import Path
import numpy as np, torch
from diffedit.core import load_pipe, latents_to_image
from diffedit.mask import mask_map, binarize
from diffedit.score import mask_iou
from diffedit.encode import ddim_encode
from diffedit.edit import masked_decode
from diffedit.evaluate import edit_set
from fastcore.basics import chunked

CACHE = Path(os.environ.get('LEVERS_CACHE', '/tmp/levers/run.pt'))
OUT = Path('bench/results/pixel_mask_background.json')

@torch.no_grad()
def run(n=200, bs=16, r=0.7, clip=0.99, threshold=0.5):
    "The same edits as `run_ours` in `full_run`'s main stage, keeping the soft maps too."
    torch.set_num_threads(1); pipe = load_pipe(); edits = edit_set(n); res = dict(ims=[], ms=[], softs=[], secs=[])
    for ch in chunked(edits, bs):
        t0 = time.perf_counter()
        softs = [mask_map(pipe, e.scene.image, e.ref, e.query, clip=clip) for e in ch]
        mk = [(binarize(s, threshold), s) for s in softs]
        enc = ddim_encode(pipe, [e.scene.image for e in ch], r=r, steps=50)
        y = masked_decode(pipe, enc, torch.stack([m for m, s in mk]), [e.query for e in ch], 7.5)
        res['ims'] += [np.asarray(im) for im in latents_to_image(pipe, y)]
        res['ms'] += [m for m, s in mk]; res['softs'] += [s for m, s in mk]
        res['secs'] += [(time.perf_counter()-t0)/len(ch)]*len(ch)
        CACHE.parent.mkdir(parents=True, exist_ok=True); torch.save(res, CACHE); print(len(res['ims']), time.strftime('%X'), flush=True)

if __name__ == '__main__':
    if sys.argv[1] == 'run': run()

def sign_p(lost, won):
    "The exact two-sided sign test on the edits a change flipped."
    import math
    return min(1., 2*sum(math.comb(lost+won, k) for k in range(min(lost, won)+1))/2**(lost+won))

def score_cached(n=200):
    "Score the cached run: IoU of the latent and the pixel mask; PSNR and success of the edit, plain and with `keep_input`."
    from PIL import Image
    from diffedit.edit import pixel_mask, keep_input, feather_mask
    from diffedit.score import score
    from diffedit.score import load_classifier
    torch.set_num_threads(1)
    clf = load_classifier()
    c = torch.load(CACHE, weights_only=False); edits = edit_set(n); rows = []
    variants = {'ours': None,                                       # name: (mask the paste goes through, grow px, blur sigma px)
                'keep_background': ('pixel', 4, 2.),
                'keep_background, no grow': ('pixel', 0, 2.),
                'keep_background, no grow, latent mask': ('latent', 0, 0.5)}   # sigma in latent cells: 2 px
    for e, im, m, s, sec in zip(edits, c['ims'], c['ms'], c['softs'], c['secs']):
        out = Image.fromarray(im); pm = pixel_mask(s, e.scene.image.size)
        for name, v in variants.items():
            o = out if v is None else keep_input(e.scene.image, out, pm if v[0] == 'pixel' else m, v[1], v[2])
            sc = score(clf, e, o, m); same = (np.asarray(o) == np.asarray(e.scene.image)).all(-1)
            outside = same if v is None else feather_mask(pm if v[0] == 'pixel' else m, o.size, v[1], v[2])[0].numpy() == 0
            rows.append(dict(method=name, i=e.i, pair=e.pair, objects=len(e.scene.objects), background=e.scene.background, **sc,
                             iou_pixel=mask_iou(pm, e.gt), exact_bg=bool(sc['psnr'] >= 100.), exact_pixels=float(same.mean()),
                             exact_outside_feather=bool(same[outside].all()), seconds=sec))
    import pandas as pd
    df = pd.DataFrame(rows); base = df[df.method == 'ours'].set_index('i'); tests = []
    for name in variants:
        d = df[df.method == name].set_index('i')
        lost = int(((base.success == 1) & (d.success == 0)).sum()); won = int(((base.success == 0) & (d.success == 1)).sum())
        tests.append(dict(method=name, iou=d.iou.mean(), iou_pixel=d.iou_pixel.mean(), psnr=d.psnr.mean(), exact_bg=d.exact_bg.mean(),
                          exact_pixels=d.exact_pixels.mean(), exact_outside_feather=d.exact_outside_feather.mean(),
                          success=d.success.mean(), success_mask=d.success_mask.mean(), lost=lost, won=won, p=sign_p(lost, won),
                          **{f'success_{k}obj': d[d.objects == k].success.mean() for k in (1, 2, 3)}))
    il, ip = base.iou, base.iou_pixel
    iou_test = dict(latent=il.mean(), pixel=ip.mean(), pixel_better=int((ip > il).sum()), latent_better=int((il > ip).sum()),
                    p=sign_p(int((il > ip).sum()), int((ip > il).sum())), **{f'pixel_{k}obj': ip[base.objects == k].mean() for k in (1, 2, 3)},
                    **{f'latent_{k}obj': il[base.objects == k].mean() for k in (1, 2, 3)})
    res = dict(meta=dict(n=n, bs=16, threads=1, steps=50, r=0.7, clip=0.99, threshold=0.5, torch=torch.__version__, date=time.strftime('%Y-%m-%d'),
                         command='python bench/pixel_mask_background.py run && python bench/pixel_mask_background.py score',
                         note='one run of ours; every variant is computed from its decoded images and soft maps'),
               iou=iou_test, summary=tests, rows=rows)
    OUT.write_text(json.dumps(res, indent=0)); print(pd.DataFrame(tests).round(3).to_string()); print(iou_test)

if __name__ == '__main__' and sys.argv[1] == 'score': score_cached()
