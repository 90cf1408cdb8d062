"""Bad input through the `diffedit` command, as a new user would give it; each case sorted into one of five outcomes:
clear error (exit 2, one line, no traceback), conversion (exit 0, the input read another way, said or checked), traceback,
silent wrong (exit 0, wrong picture or an unknown word used without a word) and data loss (an input or an output replaced).
Run: OMP_NUM_THREADS=1 python bench/bad_input_sweep.py [--quick]   (a few minutes on two CPU cores; --quick skips the edits that run)."""
import os, shutil, subprocess, sys, tempfile
from collections import Counter
from pathlib import Path
import numpy as np
from PIL import Image

ENV = {'OMP_NUM_THREADS': '1', **os.environ, 'HF_HUB_OFFLINE': '1', 'DIFFEDIT_MODEL': ''}
ENV.pop('DIFFEDIT_DEBUG', None)
FAST = ['--steps', '5', '--n', '2', '-q']
REF, QUERY = 'a horse and a tree on grass', 'a zebra and a tree on grass'

def cli(args, env=None):
    return subprocess.run([sys.executable, '-m', 'diffedit.cli', *map(str, args)], capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=900)

def fixtures(d):
    "Input files good and bad in folder `d`."
    from diffedit.scenes import make_scene
    from diffedit.core import embedded_model
    s = make_scene(['horse', 'tree'], 'grass', seed=1).image
    s.save(d/'scene.png'); (d/'notes.txt').write_text('not an image'); (d/'empty.png').write_bytes(b'')
    (d/'cut.png').write_bytes((d/'scene.png').read_bytes()[:200])
    Image.fromarray((np.asarray(s.convert('L'), np.uint16)*257)).save(d/'grey16.png')
    s.convert('RGBA').save(d/'rgba.png')
    exif = Image.Exif(); exif[0x0112] = 6
    s.rotate(-90).save(d/'side.jpg', exif=exif, quality=95)             # stored sideways; shown upright
    s.resize((1000, 1000), Image.LANCZOS).save(d/'big.png')
    (d/'nomodel').mkdir()
    shutil.copytree(embedded_model(), d/'broken')
    w = next((d/'broken'/'unet').glob('*.safetensors')); w.write_bytes(w.read_bytes()[:1000])
    os.link(d/'scene.png', d/'hard.png'); os.symlink(d/'scene.png', d/'soft.png')
    return s

def cases(d):
    "(name, argv, env, check): `check(p)` returns an outcome for an exit 0, or None for a plain success."
    E = lambda img='scene.png', *more, o='o.png': ['edit', d/img, '--ref', REF, '--query', QUERY, '-o', d/o, *more]
    def grey_not_white(p):
        a = np.asarray(Image.open(d/'o.png').convert('L'), np.float32)
        return 'silent wrong' if a.mean() > 240 else 'conversion'
    def upright(p):
        return 'conversion' if Image.open(d/'o.png').size == (64, 64) and Image.open(d/'mask.png').size == (64, 64) else 'silent wrong'
    def said(p): return 'conversion' if 'warning' in p.stderr else 'silent wrong'
    def not_black(p):
        return 'silent wrong' if np.asarray(Image.open(d/'o.png')).max() < 10 else None
    out = []
    for opt in ('--r', '--n', '--mask-encode-strength', '--threshold', '--steps', '--size', '--guidance-scale', '--decay-to', '--decay-start', '--seed'):
        for v in ('0', '-1', '1e9', 'nan', 'inf', 'abc', '1e30', str(2**64), '2.5'):
            out.append((f'edit {opt} {v}', E('scene.png', *FAST, opt, v), {}, not_black))   # after FAST: the last wins
    out += [
        ('missing image', E('nope.png'), {}, None), ('folder as image', ['edit', d, '--ref', 'a', '--query', 'b', '-o', d/'o.png'], {}, None),
        ('text as image', E('notes.txt'), {}, None), ('empty png', E('empty.png'), {}, None), ('truncated png', E('cut.png'), {}, None),
        ('text as mask', E('scene.png', '--mask', d/'notes.txt'), {}, None),
        ('16-bit png', E('grey16.png', *FAST), {}, grey_not_white), ('rgba png', E('rgba.png', *FAST), {}, None),
        ('exif sideways', E('side.jpg', '--mask-out', d/'mask.png', *FAST), {}, upright),
        ('1000 px photo', E('big.png', *FAST), {}, said),
        ('-o = --mask-out (..)', E('scene.png', '--mask-out', d/'sub/../o.png'), {}, None),
        ('-o = --soft-out (./)', E('scene.png', '--soft-out', d/'./o.png'), {}, None),
        ('-o = input', E('scene.png', o='scene.png'), {}, None), ('--mask-out = input', E('scene.png', '--mask-out', d/'scene.png'), {}, None),
        ('-o = hard link to input', E('scene.png', o='hard.png'), {}, None), ('-o = symlink to input', E('scene.png', o='soft.png'), {}, None),
        ('-o = input, unwritable --mask-out', E('scene.png', '--mask-out', d/'notes.txt/m.png', '--overwrite-input', o='scene.png'), {}, None),
        ('-o in a file', E(o='notes.txt/o.png'), {}, None), ('-o is a folder', E(o='nomodel'), {}, None), ('-o .xyz', E(o='o.xyz'), {}, None),
        ('empty query', E('scene.png', '--query', ' '), {}, None), ('long prompt', E('scene.png', '--query', 'a zebra ' * 60, '-q'), {}, None),
        ('emoji in prompt', E('scene.png', '--query', 'a 🦓 and a tree on grass', *FAST), {}, said),
        ('unknown word', E('scene.png', '--query', 'a giraffe and a tree on grass', *FAST), {}, said),
        ('--device bogus', E('scene.png', '--device', 'bogus', '-q'), {}, None), ('--device cuda', E('scene.png', '--device', 'cuda', '-q'), {}, None),
        ('--dtype float16 on cpu', E('scene.png', '--device', 'cpu', '--dtype', 'float16', '-q'), {}, None),
        ('DIFFEDIT_MODEL is a file', E('scene.png', '-q'), {'DIFFEDIT_MODEL': str(d/'notes.txt')}, None),
        ('--model empty folder', E('scene.png', '--model', d/'nomodel', '-q'), {}, None),
        ('--model truncated weights', E('scene.png', '--model', d/'broken', '-q'), {}, None),
        ('--model missing', E('scene.png', '--model', d/'none', '-q'), {}, None),
        ('--model hub id offline', E('scene.png', '--model', 'someone/not-here', '-q'), {}, None),
        ('scene --size 100000', ['scene', 'horse', '--size', '100000', '-o', d/'s.png'], {}, None),
        ('scene --seed 2**64', ['scene', 'horse', '--seed', 2**64, '-o', d/'s.png'], {}, None),
        ('scene unicorn', ['scene', 'unicorn', '-o', d/'s.png'], {}, None), ('scene horse horse', ['scene', 'horse', 'horse', '-o', d/'s.png'], {}, None),
        ('scene -b moon', ['scene', 'horse', '-b', 'moon', '-o', d/'s.png'], {}, None),
        ('sample -g nan', ['sample', 'a dog', '-g', 'nan', '-o', d/'g.png'], {}, None),
        ('sample --n-images 0', ['sample', 'a dog', '--n-images', '0', '-o', d/'g.png'], {}, None),
        ('sample --n-images 10**9', ['sample', 'a dog', '--n-images', 10**9, '-o', d/'g.png'], {}, None),
        ('sample --scale 10**6', ['sample', 'a dog', '--scale', 10**6, '-o', d/'g.png'], {}, None),
        ('demo into a file', ['demo', '-o', d/'notes.txt'], {}, None), ('app --port 99999', ['app', '--port', '99999'], {}, None),
        ('no command', [], {}, None), ('unknown command', ['nonsense'], {}, None),
    ]
    return out

def classify(p, check, inputs):
    if any(Path(f).read_bytes() != b for f, b in inputs.items()): return 'data loss'
    if 'Traceback' in p.stderr: return 'traceback'
    if p.returncode == 2:
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''
        return 'clear error' if 'error' in last else 'unclear error'
    if p.returncode == 0: return (check(p) if check else None) or 'ok'
    return f'exit {p.returncode}'

def simultaneous_saves(d, tries=5):
    "Two `diffedit scene` commands writing one path at once, `tries` times: a corrupt file is data loss."
    bad = 0
    for i in range(tries):
        ps = [subprocess.Popen([sys.executable, '-m', 'diffedit.cli', 'scene', obj, '--size', '1024', '-o', d/'same.png'], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for obj in ('horse', 'dog')]
        for p in ps: p.wait()
        try: Image.open(d/'same.png').load()
        except Exception: bad += 1
    return 'data loss' if bad else 'ok'

def main():
    quick = '--quick' in sys.argv
    d = Path(tempfile.mkdtemp(prefix='diffedit-sweep-'))
    try:
        fixtures(d); counts = Counter(); rows = []
        inputs = {f: f.read_bytes() for f in (d/'scene.png', d/'grey16.png', d/'side.jpg', d/'notes.txt')}
        for name, args, env, check in cases(d):
            if quick and check is not None and '-q' in args: continue
            for f in (d/'o.png', d/'mask.png'): f.unlink(missing_ok=True)
            p = cli(args, env); k = classify(p, check, inputs); counts[k] += 1
            last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''
            rows.append((k, name, last[:150]))
            for f, b in inputs.items(): f.write_bytes(b)                # every case starts from the same inputs
        k = simultaneous_saves(d); counts[k] += 1; rows.append((k, 'two saves to one path at once (x5)', ''))
        for k, name, last in sorted(rows): print(f'{k:13} | {name:36} | {last}')
        print('\n' + ', '.join(f'{k}: {counts[k]}' for k in ('clear error', 'conversion', 'ok', 'unclear error', 'traceback', 'silent wrong', 'data loss')),
              f'(total {sum(counts.values())})')
    finally: shutil.rmtree(d)

if __name__ == '__main__': main()
