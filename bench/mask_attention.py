"""The cross-attention lever, measured on the evaluation's 200 edits: mask IoU of DiffEdit's noise-difference map, of the
changed words' cross-attention map and of their geometric mean, at latent and pixel resolution; then the edits end to end
(success by the classifier on the ground-truth box, background PSNR) with today's mask and with the combined one, paired,
with a two-sided sign test. Writes bench/results/mask_attention.json.
Usage: python bench/mask_attention.py [--n 200] [--no-edits] [--out bench/results/mask_attention.json]
"""
import argparse, json, math, sys, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
ROOT = Path(__file__).resolve().parents[1]; sys.path.insert(0, str(ROOT))
import warnings; warnings.filterwarnings('ignore')
from diffedit.core import load_pipe, image_to_latents
from diffedit.mask import noise_diff, soft_map, word_map, cross_attention
from diffedit.score import mask_iou
from diffedit.evaluate import edit_set, run_ours, score_all
from diffedit.score import load_classifier

def iou_px(soft, gt, th):
    "IoU with the ground truth of the soft map upsampled to pixels, then thresholded."
    gt = torch.as_tensor(np.asarray(gt)).bool()
    p = F.interpolate(soft[None, None].float(), size=gt.shape, mode='bilinear', align_corners=False)[0, 0] > th
    return ((p & gt).sum()/(p | gt).sum().clamp_min(1)).item()

def sign_test(wins, losses):
    "Two-sided sign test p-value for `wins` against `losses` (ties dropped)."
    k, n = min(wins, losses), wins + losses
    return 1.0 if n == 0 else min(1.0, 2*sum(math.comb(n, i) for i in range(k+1))/2**n)

def main():
    p = argparse.ArgumentParser(); p.add_argument('--n', type=int, default=200); p.add_argument('--no-edits', action='store_true')
    p.add_argument('--out', default=str(ROOT/'bench/results/mask_attention.json')); p.add_argument('--threads', type=int, default=1)
    a = p.parse_args(); torch.set_num_threads(a.threads)
    pipe = load_pipe(); edits = edit_set(a.n); rows, maps = [], {}
    t0 = time.time()
    for e in edits:
        x0 = image_to_latents(pipe, e.scene.image)
        with cross_attention(pipe) as store: d = noise_diff(pipe, e.scene.image, e.ref, e.query, latents=x0)
        S = soft_map(d)[0]; A = soft_map(word_map(store, pipe.tokenizer, e.ref, e.query, d.shape), 1.)[0]
        G = (S*A).sqrt(); G = G/G.max().clamp_min(1e-8)
        maps.setdefault('noise', []).append(S); maps.setdefault('both', []).append(G)
        r = dict(i=e.i, objects=len(e.scene.objects))
        for name, m in dict(noise=S, attention=A, both=G).items():
            for th in (0.4, 0.5, 0.6):
                r[f'{name} {th} latent'] = mask_iou((m > th).float()[None], e.gt); r[f'{name} {th} pixel'] = iou_px(m, e.gt, th)
        rows.append(r)
    res = dict(n=a.n, date=time.strftime('%Y-%m-%d'), torch=torch.__version__, threads=a.threads, mask_seconds=round(time.time()-t0, 1),
               iou={k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0] if k not in ('i', 'objects')},
               iou_by_objects={str(o): {k: round(float(np.mean([r[k] for r in rows if r['objects'] == o])), 4) for k in ('noise 0.5 latent', 'both 0.5 latent', 'both 0.6 pixel')}
                               for o in sorted({r['objects'] for r in rows})})
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1)); print(json.dumps(res['iou'], indent=1), flush=True)
    if a.no_edits: return
    clf = load_classifier()
    scores = {}
    for name in ('noise', 'both'):
        t = time.time(); masks = [(m > 0.5).float()[None] for m in maps[name]]
        scores[name] = score_all(clf, edits, run_ours(pipe, edits, masks=masks), method=name)
        res[f'edit_seconds_{name}'] = round(time.time()-t, 1); print(name, res[f'edit_seconds_{name}'], 's', flush=True)
    b, c = scores['noise'], scores['both']
    wins = sum(y['success'] > x['success'] for x, y in zip(b, c)); losses = sum(y['success'] < x['success'] for x, y in zip(b, c))
    res['end_to_end'] = {name: dict(success=round(float(np.mean([r['success'] for r in s])), 4), iou=round(float(np.mean([r['iou'] for r in s])), 4),
                                    psnr=round(float(np.mean([r['psnr'] for r in s])), 2),
                                    success_by_objects={str(o): round(float(np.mean([r['success'] for r in s if r['objects'] == o])), 4) for o in (1, 2, 3)})
                         for name, s in scores.items()}
    res['paired_success'] = dict(both_wins=wins, both_loses=losses, sign_test_p=round(sign_test(wins, losses), 4))
    out.write_text(json.dumps(res, indent=1)); print(json.dumps({k: res[k] for k in ('end_to_end', 'paired_success')}, indent=1))

if __name__ == '__main__': main()
