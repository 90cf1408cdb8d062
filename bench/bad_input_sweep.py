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
    return subprocess.run([sys.executable, '-m', 'diffedit.cli', *map(str, args)], capture_output=True, text=True, errors='replace', env={**ENV, **(env or {})}, timeout=900)

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
    Image.new('RGB', (12000, 12000), (30, 120, 40)).save(d/'huge.png')   # 144 Mpx in a few hundred KB
    os.mkfifo(d/'fifo.png'); os.symlink('/dev/null', d/'null.png'); os.symlink(d/'fifo.png', d/'tofifo.png')
    os.symlink(d/'loop_b.png', d/'loop_a.png'); os.symlink(d/'loop_a.png', d/'loop_b.png')
    g = np.asarray(s.convert('L'))
    Image.fromarray(g.astype(np.float32)/255).save(d/'float.tif')        # a float image in [0, 1]
    e = np.zeros((64, 64), bool); e[20:44, 20:44] = True
    Image.fromarray((20000 + e*45535).astype(np.uint16)).save(d/'mask16.png')   # keep = 20000, edit = 65535
    Image.fromarray(e.astype(np.float32)).save(d/'maskF.tif')            # 1 = edit
    Image.fromarray(e.astype(np.int32)*65535).save(d/'maskI.tif')
    Image.fromarray(np.dstack([np.full((64, 64, 3), 255, np.uint8), e.astype(np.uint8)*255])).save(d/'maskRGBA.png')   # strokes on a transparent layer
    Image.new('L', (64, 64)).save(d/'black.png')
    (d/'edits.csv').write_text(f'image,ref,query\nscene.png,{REF},{QUERY}\nbig.png,{REF},{QUERY}\n')
    (d/'bad.csv').write_text('image,ref\nscene.png,a\n'); (d/'punct.csv').write_text(f'image,ref,query\nscene.png,{REF},!!!\n')
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
    def square(p):
        m = np.asarray(Image.open(d/'mask.png')) > 127
        return 'conversion' if m.sum() == 24*24 and m[20:44, 20:44].all() else 'silent wrong'
    def like_input(p):
        a, b = (np.asarray(Image.open(f).convert('L'), np.float32) for f in (d/'scene.png', d/'o.png'))
        return 'conversion' if (np.abs(a - b) <= 1).mean() > 0.3 else 'silent wrong'
    def both(p):
        return None if (d/os.fsdecode(b'\xffo.png')).exists() and (d/'mask.png').exists() else 'data loss'
    def batch(p):
        return None if sorted(f.name for f in (d/'outdir').iterdir()) == ['big.png', 'scene.png'] else 'silent wrong'
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
        # 2026-12-01 sweep: budget, modes, special outputs, formats, misleading errors, edits that cannot be the one asked for, batches
        ('12000x12000 png', E('huge.png', '-q'), {}, None), ('12000x12000 mask', E('scene.png', '--mask', d/'huge.png', '-q'), {}, None),
        ('DIFFEDIT_MAX_PIXELS=lots', E('scene.png', '-q'), {'DIFFEDIT_MAX_PIXELS': 'lots'}, None),
        ('16-bit mask 20000/65535', E('scene.png', '--mask', d/'mask16.png', '--mask-out', d/'mask.png', *FAST), {}, square),
        ('float mask tiff', E('scene.png', '--mask', d/'maskF.tif', '--mask-out', d/'mask.png', *FAST), {}, square),
        ('32-bit mask tiff', E('scene.png', '--mask', d/'maskI.tif', '--mask-out', d/'mask.png', *FAST), {}, square),
        ('rgba strokes mask', E('scene.png', '--mask', d/'maskRGBA.png', '--mask-out', d/'mask.png', *FAST), {}, square),
        ('float image tiff', E('float.tif', *FAST), {}, like_input),
        ('-o fifo', E(o='fifo.png'), {}, None), ('-o link to /dev/null', E(o='null.png'), {}, None), ('-o link to fifo', E(o='tofifo.png'), {}, None),
        ('-o link loop', E(o='loop_a.png'), {}, None), ('--mask-out link loop', E('scene.png', '--mask-out', d/'loop_b.png'), {}, None),
        ('image is a link loop', E('loop_a.png'), {}, None), ('image is a fifo', E('fifo.png'), {}, None),
        ('--mask-out m.h5', E('scene.png', '--mask-out', d/'m.h5'), {}, None), ('--soft-out s.xbm', E('scene.png', '--soft-out', d/'s.xbm'), {}, None),
        ('-o name of 300 bytes', E(o='x'*300 + '.png'), {}, None),
        ('non-utf-8 name, utf-8 stdout', E('scene.png', '--mask-out', d/'mask.png', *FAST, o=os.fsdecode(b'\xffo.png')),
         {'PYTHONIOENCODING': 'utf-8'}, both),
        ('--size 1', E('scene.png', '--size', '1'), {}, None), ('--word-weight 1e30', E('scene.png', '--word-weight', '1e30'), {}, None),
        ('--blur 1e9', E('scene.png', '--blur', '1e9'), {}, None), ('--refine 1e4', E('scene.png', '--refine', '1e4'), {}, None),
        ('query !!!', E('scene.png', '--query', '!!!'), {}, None),
        ('--steps 1', E('scene.png', '--n', '2', '-q', '--steps', '1'), {}, said), ('--steps 2', E('scene.png', '--n', '2', '-q', '--steps', '2'), {}, said),
        ('all-black mask', E('scene.png', '--mask', d/'black.png', *FAST), {}, said),
        ('DIFFEDIT_DTYPE=float8', E('scene.png', '-q'), {'DIFFEDIT_DTYPE': 'float8'}, None),
        ('csv of two edits', ['edit', '--csv', d/'edits.csv', '-o', d/'outdir', *FAST], {}, batch),
        ('csv without query column', ['edit', '--csv', d/'bad.csv', '-o', d/'outdir2'], {}, None),
        ('csv query !!!', ['edit', '--csv', d/'punct.csv', '-o', d/'outdir2'], {}, None),
        ('two inputs, -o a file name', ['edit', d/'scene.png', d/'big.png', '-R', REF, '-Q', QUERY, '-o', d/'o.png'], {}, None),
        ('two inputs, one name', ['edit', d/'scene.png', d/'nomodel/../scene.png', '-R', REF, '-Q', QUERY, '-o', d/'outdir2'], {}, None),
    ]
    return out

def _replaced(d):
    "'security' if the link to a device was replaced, 'data loss' if the named pipe or a link was, else None."
    import stat
    if not (os.path.islink(d/'null.png') and os.readlink(d/'null.png') == '/dev/null'): return 'security'
    if not (stat.S_ISFIFO(os.lstat(d/'fifo.png').st_mode) and all(os.path.islink(d/f) for f in ('tofifo.png', 'loop_a.png', 'loop_b.png'))): return 'data loss'

def classify(p, check, inputs, d=None):
    if d is not None and (k := _replaced(d)): return k
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
            p = cli(args, env); k = classify(p, check, inputs, d); counts[k] += 1
            last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''
            rows.append((k, name, last[:150]))
            for f, b in inputs.items(): f.write_bytes(b)                # every case starts from the same inputs
        k = simultaneous_saves(d); counts[k] += 1; rows.append((k, 'two saves to one path at once (x5)', ''))
        for k, name, last in sorted(rows): print(f'{k:13} | {name:36} | {last}')
        print('\n' + ', '.join(f'{k}: {counts[k]}' for k in ('clear error', 'conversion', 'ok', 'unclear error', 'traceback', 'silent wrong', 'data loss', 'security')),
              f'(total {sum(counts.values())})')
    finally: shutil.rmtree(d)

if __name__ == '__main__': main()
