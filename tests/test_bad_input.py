"""Bad input through the `diffedit` command: a one-line error (before the model loads when it can be known then), a stated conversion,
or a safe result; never a traceback, a silent wrong picture or a lost file."""
import os, stat, subprocess, sys, threading
import numpy as np, pytest
from PIL import Image
from test_cli import cli, assert_user_error, FAST, ENV

REF, QUERY = 'a horse and a tree on grass', 'a zebra and a tree on grass'

@pytest.fixture
def files(tmp_path):
    "A scene to edit, a text file and a copy of the scene's bytes, in a fresh folder."
    from diffedit.scenes import make_scene
    make_scene(['horse', 'tree'], 'grass', seed=1).image.save(tmp_path/'scene.png')
    (tmp_path/'notes.txt').write_text('not an image')
    return dict(tmp=tmp_path, scene=tmp_path/'scene.png', notes=tmp_path/'notes.txt', data=(tmp_path/'scene.png').read_bytes())

def _args(args, files): return [a.format(**files) for a in args]

EDIT = ['edit', '{scene}', '--ref', REF, '--query', QUERY]
# Known before the model loads: each is refused with a message, and the model is never loaded (no "Loading" line).
BEFORE_LOAD = {
    'nan guidance':      (EDIT + ['-o', '{tmp}/o.png', '-g', 'nan'], ['--guidance-scale', 'finite']),
    'inf guidance':      (EDIT + ['-o', '{tmp}/o.png', '-g', 'inf'], ['--guidance-scale', 'finite']),
    'huge guidance':     (EDIT + ['-o', '{tmp}/o.png', '-g', '1e30'], ['--guidance-scale', '[0, 100]']),
    'negative guidance': (EDIT + ['-o', '{tmp}/o.png', '-g', '-3'], ['--guidance-scale', '[0, 100]']),
    'nan decay-to':      (EDIT + ['-o', '{tmp}/o.png', '--decay-to', 'nan'], ['--decay-to', 'finite']),
    'nan decay-start':   (EDIT + ['-o', '{tmp}/o.png', '--decay-start', 'nan'], ['--decay-start', 'finite']),
    'decay-start 1':     (EDIT + ['-o', '{tmp}/o.png', '--decay-start', '1'], ['--decay-start', '[0, 1)']),
    'nan r':             (EDIT + ['-o', '{tmp}/o.png', '--r', 'nan'], ['--r', 'finite']),
    'threshold 0':       (EDIT + ['-o', '{tmp}/o.png', '--threshold', '0'], ['--threshold', '(0, 1]']),
    'negative refine':   (EDIT + ['-o', '{tmp}/o.png', '--refine', '-1'], ['--refine', '[0, 32]']),
    'nan refine':        (EDIT + ['-o', '{tmp}/o.png', '--refine', 'nan'], ['--refine', 'finite']),
    'huge refine':       (EDIT + ['-o', '{tmp}/o.png', '--refine', '1e30'], ['--refine', '32']),
    'word weight 0':     (EDIT + ['-o', '{tmp}/o.png', '--word-weight', '0'], ['--word-weight', '(0, 10]']),
    'negative word weight': (EDIT + ['-o', '{tmp}/o.png', '--word-weight', '-1.5'], ['--word-weight', '(0, 10]']),
    'huge word weight':  (EDIT + ['-o', '{tmp}/o.png', '--word-weight', '1e30'], ['--word-weight', '(0, 10]']),
    'nan word weight':   (EDIT + ['-o', '{tmp}/o.png', '--word-weight', 'nan'], ['--word-weight', 'finite']),
    'inf word weight':   (EDIT + ['-o', '{tmp}/o.png', '--word-weight', 'inf'], ['--word-weight', 'finite']),
    '65-bit seed':       (EDIT + ['-o', '{tmp}/o.png', '--seed', str(2**64)], ['--seed', '2**64-1']),
    'negative seed':     (EDIT + ['-o', '{tmp}/o.png', '--seed', '-1'], ['--seed', '2**64-1']),
    'edit size 4096':    (EDIT + ['-o', '{tmp}/o.png', '--size', '4096'], ['--size', '2048']),
    'too many steps':    (EDIT + ['-o', '{tmp}/o.png', '--steps', '5000'], ['--steps', '1000']),
    'empty query':       (['edit', '{scene}', '--ref', REF, '--query', ' ', '-o', '{tmp}/o.png'], ['prompt is empty']),
    'outputs one file':  (EDIT + ['-o', '{tmp}/x.png', '--mask-out', '{tmp}/sub/../x.png'], ['same file']),
    'outputs abs/rel':   (EDIT + ['-o', '{tmp}/x.png', '--soft-out', '{tmp}/./x.png'], ['same file']),
    'mask-out = input':  (EDIT + ['-o', '{tmp}/o.png', '--mask-out', '{scene}'], ['input', '--overwrite-input']),
    '-o = input':        (EDIT + ['-o', '{scene}'], ['input', '--overwrite-input']),
    '-o = input, bad mask-out': (EDIT + ['-o', '{scene}', '--mask-out', '{notes}/m.png', '--overwrite-input'], ['cannot write', 'notes.txt']),
    'folder is a file':  (EDIT + ['-o', '{notes}/sub/o.png'], ['cannot write', 'notes.txt']),
    'output is a folder': (EDIT + ['-o', '{tmp}'], ['.png']),
    'output is a folder.png': (EDIT + ['-o', '{tmp}/d.png/'], ['folder']),
    'sample nan':        (['sample', 'a dog', '-o', '{tmp}/g.png', '-g', 'nan'], ['finite']),
    'sample bad folder': (['sample', 'a dog', '-o', '{notes}/g.png'], ['cannot write']),
    'scene size 100000': (['scene', 'horse', '-o', '{tmp}/s.png', '--size', '100000'], ['--size', '2048']),
    'scene 65-bit seed': (['scene', 'horse', '-o', '{tmp}/s.png', '--seed', str(2**64)], ['--seed']),
    'demo into a file':  (['demo', '-o', '{notes}'], ['cannot write', 'notes.txt']),
    'a billion draws':   (EDIT + ['-o', '{tmp}/o.png', '--n', '1000000000'], ['--n', '100']),
    'no command':        ([], ['give a command']),
    'sample huge scale': (['sample', 'a dog', '-o', '{tmp}/g.png', '--scale', '100000'], ['--scale', '1 to 16']),
    'size 1':            (EDIT + ['-o', '{tmp}/o.png', '--size', '1'], ['--size', 'from 16']),
    'huge blur':         (EDIT + ['-o', '{tmp}/o.png', '--blur', '1e9'], ['--blur', '[0, 16]']),
    'punctuation query': (['edit', '{scene}', '--ref', REF, '--query', '!!!', '-o', '{tmp}/o.png'], ['no words', "'!!!'"]),
    'mask-out .h5':      (EDIT + ['-o', '{tmp}/o.png', '--mask-out', '{tmp}/m.h5'], ['--mask-out', 'HDF5']),
    'soft-out .xbm':     (EDIT + ['-o', '{tmp}/o.png', '--soft-out', '{tmp}/s.xbm'], ['XBM']),
    '-o a fifo':         (EDIT + ['-o', '{tmp}/fifo.png'], ['named pipe']),
    '-o link to a device': (EDIT + ['-o', '{tmp}/null.png'], ['character device']),
    '-o link to a fifo': (EDIT + ['-o', '{tmp}/tofifo.png'], ['named pipe']),
    '-o link loop':      (EDIT + ['-o', '{tmp}/loop_a.png'], ['symbolic link loop']),
    'mask-out link loop': (EDIT + ['-o', '{tmp}/o.png', '--mask-out', '{tmp}/loop_b.png'], ['symbolic link loop']),
    'image link loop':   (['edit', '{tmp}/loop_a.png', '--ref', REF, '--query', QUERY, '-o', '{tmp}/o.png'], ['symbolic link loop']),
    'image is a fifo':   (['edit', '{tmp}/fifo.png', '--ref', REF, '--query', QUERY, '-o', '{tmp}/o.png'], ['not a regular file']),
    'name too long':     (EDIT + ['-o', '{tmp}/' + 'x'*300 + '.png'], ['255 bytes']),
    'image over budget': (['edit', '{tmp}/big.png', '--ref', REF, '--query', QUERY, '-o', '{tmp}/o.png'], ['12000x12000', 'DIFFEDIT_MAX_PIXELS=144000000']),
    'mask over budget':  (EDIT + ['-o', '{tmp}/o.png', '--mask', '{tmp}/big.png'], ['mask is 12000x12000', 'DIFFEDIT_MAX_PIXELS']),
}

@pytest.mark.parametrize('name', BEFORE_LOAD)
def test_before_load(name, files):
    args, words = BEFORE_LOAD[name]
    if name == 'output is a folder.png': (files['tmp']/'d.png').mkdir()
    _specials(files['tmp'], big='budget' in name)
    p = cli(*_args(args, files))
    assert_user_error(p, *words)
    assert 'Loading' not in p.stderr, p.stderr                       # refused before the model loads
    assert files['scene'].read_bytes() == files['data']               # the input is never touched
    assert not any(files['tmp'].glob('o.png')) and not any(files['tmp'].glob('x.png'))
    assert stat.S_ISFIFO(os.stat(files['tmp']/'fifo.png').st_mode) and os.path.islink(files['tmp']/'null.png')   # special files left as they were

def _specials(d, big=False):
    "A named pipe, links to a device and to the pipe, a link loop, and (if `big`) a 12000x12000 PNG of a few hundred KB, in folder `d`."
    os.mkfifo(d/'fifo.png'); os.symlink('/dev/null', d/'null.png'); os.symlink(d/'fifo.png', d/'tofifo.png')
    os.symlink(d/'loop_b.png', d/'loop_a.png'); os.symlink(d/'loop_a.png', d/'loop_b.png')
    if big: Image.new('L', (12000, 12000), 255).save(d/'big.png')

def test_threshold_help_agrees():
    p = cli('edit', '--help')
    assert '(0, 1]' in ' '.join(p.stdout[p.stdout.rindex('--threshold'):].split()[:16]), p.stdout

# Known only once the model loads: one line, exit 2, no traceback.
AT_LOAD = {
    'device bogus':   (['--device', 'bogus'], {}, ['bogus']),
    'model is a file': ([], {'DIFFEDIT_MODEL': '{notes}'}, ['notes.txt', 'file']),
    'not a model folder': (['--model', '{tmp}'], {}, ['model_index.json']),
}

@pytest.mark.parametrize('name', AT_LOAD)
def test_at_load(name, files):
    args, env, words = AT_LOAD[name]
    env = {k: v.format(**files) for k, v in env.items()}
    assert_user_error(cli(*_args(EDIT + ['-o', '{tmp}/o.png', *args, '-q'], files), env=env), *words)

def test_cuda_without_cuda(files):
    import torch
    if torch.cuda.is_available(): pytest.skip("this machine has CUDA")
    assert_user_error(cli(*_args(EDIT + ['-o', '{tmp}/o.png', '--device', 'cuda', '-q'], files)), 'cuda')

def test_links_to_the_input(files):
    t = files['tmp']; os.link(files['scene'], t/'hard.png'); os.symlink(files['scene'], t/'soft.png')
    for link in ('hard.png', 'soft.png'):
        assert_user_error(cli(*_args(EDIT + ['-o', f'{{tmp}}/{link}'], files)), 'input', '--overwrite-input')
    assert files['scene'].read_bytes() == files['data']

def test_overwrite_input(files):
    p = cli(*_args(EDIT + ['-o', '{scene}', '--overwrite-input', *FAST], files))
    assert p.returncode == 0, p.stderr
    assert files['scene'].read_bytes() != files['data'] and Image.open(files['scene']).size == (64, 64)
    assert [f.name for f in files['tmp'].iterdir() if f.name.startswith('.')] == []   # no temporary file left

def test_exif_and_resample(files):
    "A sideways photo with an EXIF orientation is edited upright; a larger image is worked small, and the command says so."
    im = Image.open(files['scene']).rotate(90, expand=True).resize((128, 128))
    im = im.crop((0, 0, 128, 64))                                     # 128x64 pixels, displayed 64x128
    exif = Image.Exif(); exif[0x0112] = 6                              # orientation 6: rotate 90 degrees clockwise to show
    im.save(files['tmp']/'photo.jpg', exif=exif)
    p = cli('edit', files['tmp']/'photo.jpg', '--ref', REF, '--query', QUERY, '-o', files['tmp']/'out.png', *FAST)
    assert p.returncode == 0, p.stderr
    assert Image.open(files['tmp']/'out.png').size == (64, 128)
    assert 'resampled' in p.stderr and 'warning' in p.stderr, p.stderr
    a, b = np.asarray(Image.open(files['tmp']/'photo.jpg').transpose(Image.ROTATE_270)), np.asarray(Image.open(files['tmp']/'out.png'))
    assert (a == b).all(-1).mean() > 0.2                                # outside the mask, the photo's own pixels at its own size

def test_open_image_exif(files):
    from diffedit.cli import open_image
    im = Image.new('RGB', (40, 20), 'red'); exif = Image.Exif(); exif[0x0112] = 6
    im.save(files['tmp']/'side.jpg', exif=exif)
    assert open_image(files['tmp']/'side.jpg').size == (20, 40)

def test_simultaneous_saves(tmp_path):
    "Two saves to one path at once leave one whole file, never a mix of both; no temporary file stays behind."
    from diffedit.cli import save
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(2)]
    want = [np.asarray(i) for i in ims]
    for _ in range(5):
        go = threading.Barrier(2)
        def f(im): go.wait(); save(im, tmp_path/'o.png')
        ts = [threading.Thread(target=f, args=(im,)) for im in ims]
        for t in ts: t.start()
        for t in ts: t.join()
        got = np.asarray(Image.open(tmp_path/'o.png'))
        assert any((got == w).all() for w in want)
    assert [f.name for f in tmp_path.iterdir()] == ['o.png']

def test_save_keeps_permissions(tmp_path):
    from diffedit.cli import save
    save(Image.new('RGB', (4, 4)), tmp_path/'a.png')
    assert (tmp_path/'a.png').stat().st_mode & 0o777 == 0o666 & ~_umask()

def _umask():
    u = os.umask(0); os.umask(u); return u

def test_app_port():
    "diffedit-app refuses a port that cannot exist, in one line, before Gradio or the model load."
    import subprocess, sys
    p = subprocess.run([sys.executable, '-m', 'diffedit.app', '--port', '99999'], capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 2 and 'Traceback' not in p.stderr, p.stderr
    assert '--port' in p.stderr and '65535' in p.stderr

def _peak_rss(args, env=None):
    "Exit code and peak resident memory (MB) of `diffedit ARGS` in a fresh process."
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True); "
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)")
    p = subprocess.run([sys.executable, '-c', code, sys.executable, '-m', 'diffedit.cli', *map(str, args)], capture_output=True, text=True,
                       env={**ENV, **(env or {})}, timeout=600)
    rc, mb = map(int, p.stdout.split()); return rc, mb

def test_big_png_memory_flat(files):
    "A 12000x12000 PNG (a few hundred KB) is refused from its header: memory stays that of the command itself (it was 8.4 GB)."
    Image.new('RGB', (12000, 12000), (30, 120, 40)).save(files['tmp']/'big.png')
    rc, mb = _peak_rss(['edit', files['tmp']/'big.png', '--ref', REF, '--query', QUERY, '-o', files['tmp']/'o.png', '-q'])
    assert rc == 2 and mb < 1000, (rc, mb)

def test_budget_raised(files):
    "DIFFEDIT_MAX_PIXELS raises the budget; a value that is not a number of pixels is one line."
    Image.new('RGB', (300, 200)).save(files['tmp']/'w.png')
    assert_user_error(cli('edit', files['tmp']/'w.png', '--ref', REF, '--query', QUERY, '-o', files['tmp']/'o.png', env={'DIFFEDIT_MAX_PIXELS': '50000'}),
                      '300x200', 'DIFFEDIT_MAX_PIXELS=60000')
    assert_user_error(cli('edit', files['tmp']/'w.png', '--ref', REF, '--query', QUERY, '-o', files['tmp']/'o.png', env={'DIFFEDIT_MAX_PIXELS': 'lots'}),
                      'DIFFEDIT_MAX_PIXELS', 'whole number')
    from diffedit.cli import open_image
    os.environ['DIFFEDIT_MAX_PIXELS'] = '60000'
    try: assert open_image(files['tmp']/'w.png').size == (300, 200)
    finally: del os.environ['DIFFEDIT_MAX_PIXELS']

def _mask_file(d, mode):
    "A 64x64 mask file in PIL `mode` whose 24x24 square at (20, 20) is the edit, in the encoding a user of that mode would give."
    e = np.zeros((64, 64), bool); e[20:44, 20:44] = True
    L = Image.fromarray(e.astype(np.uint8)*255)
    im = {'1': L.convert('1'), 'L': L, 'LA': L.convert('LA'), 'P': L.convert('P'), 'RGB': L.convert('RGB'),
          'RGBA': Image.fromarray(np.dstack([np.full((64, 64, 3), 255, np.uint8), e.astype(np.uint8)*255])),   # white strokes on a transparent layer
          'I;16': Image.fromarray((20000 + e*45535).astype(np.uint16)),                                       # keep = 20000, edit = 65535
          'I': Image.fromarray(e.astype(np.int32)*65535), 'F': Image.fromarray(e.astype(np.float32))}[mode]
    f = d/f"mask_{mode.replace(';', '')}.{'tif' if mode in ('I', 'F') else 'png'}"
    im.save(f)
    assert Image.open(f).mode == mode, Image.open(f).mode
    return f

@pytest.mark.parametrize('mode', ['1', 'L', 'LA', 'P', 'RGB', 'RGBA', 'I;16', 'I', 'F'])
def test_mask_file_modes(mode, files):
    "A mask file is read by one rule whatever its mode: the 24x24 square is the edit, nothing else (16-bit and float masks were read as all or nothing)."
    f = _mask_file(files['tmp'], mode)
    p = cli(*_args(EDIT, files), '-o', files['tmp']/'o.png', '--mask', f, '--mask-out', files['tmp']/'m.png', '--returned-mask', 'decode', *FAST)   # the mask the edit went through
    assert p.returncode == 0, p.stderr
    assert (np.asarray(Image.open(files['tmp']/'m.png')) > 127).sum() == 24*24

@pytest.mark.parametrize('mode', ['1', 'L', 'LA', 'P', 'RGB', 'RGBA', 'I;16', 'I', 'F'])
def test_image_file_modes(mode, files):
    "An image file is read as it looks in every mode: a float image in [0, 1] saved as TIFF is its picture, not black; 16-bit is scaled, not clipped."
    from diffedit.cli import open_image
    from diffedit.core import to_rgb
    grey = np.asarray(Image.open(files['scene']).convert('L'))
    L = Image.fromarray(grey)
    im = {'1': L.convert('1'), 'L': L, 'LA': L.convert('LA'), 'P': L.convert('P'), 'RGB': L.convert('RGB'), 'RGBA': L.convert('RGBA'),
          'I;16': Image.fromarray(grey.astype(np.uint16)*257), 'I': Image.fromarray(grey.astype(np.int32)*257),
          'F': Image.fromarray(grey.astype(np.float32)/255)}[mode]
    f = files['tmp']/f"im.{'tif' if mode in ('I', 'F') else 'png'}"
    im.save(f)
    assert Image.open(f).mode == mode, Image.open(f).mode
    got = np.asarray(to_rgb(open_image(f)))[..., 0].astype(int)
    want = np.asarray(L.convert('1').convert('L')) if mode == '1' else grey
    assert np.abs(got - want).max() <= 1, (mode, np.abs(got - want).max())

def test_float_tiff_edit(files):
    "A float image in [0, 1] saved as TIFF edits as itself (it edited as black): outside the mask the result is the picture."
    grey = np.asarray(Image.open(files['scene']).convert('L'))
    Image.fromarray(grey.astype(np.float32)/255).save(files['tmp']/'f.tif')
    p = cli('edit', files['tmp']/'f.tif', '--ref', REF, '--query', QUERY, '-o', files['tmp']/'o.png', *FAST)
    assert p.returncode == 0, p.stderr
    out = np.asarray(Image.open(files['tmp']/'o.png').convert('L')).astype(int)
    assert (np.abs(out - grey) <= 1).mean() > 0.3 and out.mean() > 40

@pytest.mark.parametrize('case,extra,words', [
    ('steps 1', ['--steps', '1'], ['1 decoding step']),
    ('steps 2', ['--steps', '2'], ['decoding step']),
    ('all-black mask', ['--mask', '{tmp}/black.png'], ['mask', 'all black']),
    ('0/1 mask in 8 bits', ['--mask', '{tmp}/ones.png'], ['mask', 'all black']),
])
def test_warned(case, extra, words, files):
    "An edit that cannot be the one asked for runs, and says so on stderr."
    Image.new('L', (64, 64)).save(files['tmp']/'black.png')
    a = np.zeros((64, 64), np.uint8); a[20:44, 20:44] = 1; Image.fromarray(a).save(files['tmp']/'ones.png')   # 1 = edit, saved as 8 bits: 1/255
    p = cli(*_args(EDIT + ['-o', '{tmp}/o.png', '--n', '2', '-q'] + (['--steps', '10'] if 'steps' not in case else []) + extra, files))
    assert p.returncode == 0, p.stderr
    assert 'warning' in p.stderr and all(w.lower() in p.stderr.lower() for w in words), p.stderr

def test_outputs_all_or_none(files):
    "-o is not written when --mask-out cannot be (it was written, then the command failed)."
    p = cli(*_args(EDIT + ['-o', '{tmp}/o.png', '--mask-out', '{tmp}/m.h5', *FAST], files))
    assert_user_error(p, 'HDF5'); assert not (files['tmp']/'o.png').exists()
    from diffedit.cli import save_all
    with pytest.raises(OSError): save_all({files['tmp']/'a.png': Image.new('RGB', (8, 8)), files['tmp']/'b.jpg': Image.new('RGBA', (8, 8))})
    assert sorted(f.name for f in files['tmp'].iterdir() if f.name.startswith(('a', 'b', '.'))) == []

def test_undecodable_name(files):
    "An output name the terminal cannot print (not UTF-8, with PYTHONIOENCODING=utf-8) is written, with its mask, and printed as its bytes."
    o, m = os.fsdecode(bytes(files['tmp']) + b'/\xffo.png'), os.fsdecode(bytes(files['tmp']) + b'/\xfem.png')
    p = subprocess.run([sys.executable, '-m', 'diffedit.cli', *_args(EDIT, files), '-o', o, '--mask-out', m, *FAST], capture_output=True,
                       env={**ENV, 'PYTHONIOENCODING': 'utf-8'}, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors='replace')
    assert os.path.exists(o) and os.path.exists(m) and os.fsencode(o) in p.stdout and os.fsencode(m) in p.stdout
