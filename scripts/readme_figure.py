"""The README's first figure, `nbs/images/edits.png`, from a real run: four edits by `diffedit` at its defaults on the embedded model,
each row the input, the outline the edit returns (over the input), the edit and the scene's ground-truth twin.

    python scripts/readme_figure.py
"""
import os
from pathlib import Path
import numpy as np, torch
from diffedit.load import load_pipe
from diffedit.edit import edit_image
from diffedit.scenes import make_scene
from diffedit.images import labelled_grid
from diffedit.mask import overlay

EDITS = [(['apple'], 'sand', 'apple', 'pear'), (['dog', 'house'], 'snow', 'dog', 'cat'),
         (['car', 'tree'], 'road', 'car', 'bus'), (['flower', 'cow'], 'grass', 'cow', 'pig')]   # (objects, background, old, new), scene seed 0

def main(out=Path(__file__).resolve().parent.parent/'nbs'/'images'/'edits.png', seed=0):
    pipe = load_pipe(); ims = []
    for objs, bg, old, new in EDITS:
        sc = make_scene(objs, bg, seed=seed); twin = sc.swap(old, new)
        r = edit_image(pipe, sc.image, sc.prompt, twin.prompt)
        ims += [sc.image, overlay(sc.image, torch.tensor(np.asarray(r.mask), dtype=torch.float32)[None]/255), r.image, twin.image]
    tmp = out.with_suffix('.tmp.png')
    labelled_grid(ims, rows=len(EDITS), scale=2).save(tmp); os.replace(tmp, out)   # never a half-written figure
    print(out)

if __name__ == '__main__': main()
